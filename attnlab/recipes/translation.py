"""How to train a translation model: sentence pairs -> two tokenizers -> an encoder-decoder.

One :class:`TranslationRecipe` class serves every translation kind; its instances differ in the
model (an RNN encoder-decoder with its cell and attention, or the Transformer), the presets, the
training defaults and the tokenizer choices:

    attnlab train bahdanau                 GRU encoder-decoder + additive attention (2014)
    attnlab train seq2seq-rnn | -gru | -lstm   encoder-decoders without attention
    attnlab train transformer              the 2017 Transformer

The task (``dates-fr-en``, ``copy``, ``reverse`` or a TSV file) is generated with a fixed data seed
(:data:`DATA_SEED`), so the pairs and their train/val/test split do not depend on the training
seed and ``attnlab evaluate`` rebuilds the same test split (:func:`load_run_task`). The objective
is teacher-forced cross-entropy over the real target tokens, label-smoothed for the Transformer
(:func:`attnlab.layers.loss.masked_cross_entropy`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.inference.translate import SRC_TOKENIZER_FILE, TGT_TOKENIZER_FILE
from attnlab.layers.loss import masked_cross_entropy
from attnlab.models import seq2seq, transformer
from attnlab.options import option
from attnlab.recipes.base import Recipe, Setup

DATA_SEED = 0  # the task's pairs and splits do not depend on the training seed


@dataclass
class TranslationOptions:
    """Options of every translation kind; the RNN encoder-decoders' tokenizers."""

    task: str = option("dates-fr-en", "dates-<src>-<tgt> (any two Babel locales, or iso as target), copy, "
                                      "reverse, or a TSV file of source<TAB>target lines")
    k: int = option(1, "items joined per sentence for the generated tasks (length knob: longer inputs)")
    n_pairs: int = option(20000, "distinct pairs to generate, split 80/10/10 into train/val/test")
    tokenizer: str = option("char", "char: one token per character; word: words and punctuation",
                            choices=("char", "word"))
    vocab_size: int | None = option(None, "cap on the word vocabulary (default: every word)")


@dataclass
class TransformerOptions(TranslationOptions):
    """The Transformer's options: the same task, more tokenizers, and ``auto`` by default."""

    tokenizer: str = option("auto", "auto: characters for copy/reverse, words otherwise; char; word; "
                                     "bpe: byte-level BPE", choices=("auto", "char", "word", "bpe"))
    vocab_size: int | None = option(None, "cap on the word vocabulary / BPE vocabulary size "
                                          "(default: every word; BPE 1024)")


class TranslationObjective:
    """Teacher-forced cross-entropy on batches of sentence pairs, a pure function of (seed, split, step).

    Each split is encoded and padded once; a batch draws random pairs and trims the padding
    columns nobody in the batch needs. Tokens counted for tokens/s: real target tokens.
    """

    label_smoothing = 0.0

    def __init__(self, splits: dict[str, Sequence[tuple[str, str]]], src_tokenizer: Any, tgt_tokenizer: Any,
                 seed: int = 0) -> None:
        from attnlab.data.tasks import encode_pairs

        self.seed = seed
        self.encoded = {}
        for split, pairs in splits.items():
            if not pairs:
                raise AttnlabError(f"the {split} split has no pairs; use more pairs (--n-pairs)")
            encoded = encode_pairs(pairs, src_tokenizer, tgt_tokenizer)
            keep = ("src", "src_mask", "tgt_in", "tgt_out", "tgt_mask")
            self.encoded[split] = {k: encoded[k] for k in keep}

    def batch(self, split: str, step: int, batch_size: int) -> dict[str, Tensor]:
        from attnlab.data.batching import batch_generator

        data = self.encoded[split]
        n = data["src"].shape[0]
        index = torch.randint(n, (batch_size,), generator=batch_generator(self.seed, split, step))
        src_len = int(data["src_mask"][index].sum(1).max())
        tgt_len = int(data["tgt_mask"][index].sum(1).max())
        return {k: v[index, : (src_len if k.startswith("src") else tgt_len)] for k, v in data.items()}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Mean cross-entropy over the real target tokens (label-smoothed in training mode, if set)."""
        logits = model(batch["src"], batch["src_mask"], batch["tgt_in"])
        smoothing = self.label_smoothing if model.training else 0.0
        return masked_cross_entropy(logits, batch["tgt_out"], batch["tgt_mask"], smoothing)

    def count_tokens(self, batch: dict[str, Tensor]) -> int:
        return int(batch["tgt_mask"].sum())


class SmoothedTranslationObjective(TranslationObjective):
    """The same batches and token count, with a label-smoothed training loss (plain cross-entropy in
    eval mode, so validation losses compare across ``eps``)::

        q(k) = (1 - eps) [k = y_t] + eps / V,     loss = - sum_k q(k) log P(k | y_<t, x)
    """

    def __init__(self, splits: dict[str, Sequence[tuple[str, str]]], src_tokenizer: Any, tgt_tokenizer: Any,
                 seed: int = 0, label_smoothing: float = 0.0) -> None:
        super().__init__(splits, src_tokenizer, tgt_tokenizer, seed=seed)
        self.label_smoothing = label_smoothing


def load_run_task(run_info: dict[str, Any]) -> Any:
    """The :class:`attnlab.data.tasks.TranslationData` a run was trained on, from its run.json
    (``args``: the task options the run was started with)."""
    from attnlab.data.tasks import load_task

    spec = run_info.get("args") or {}
    if "task" not in spec:
        raise AttnlabError("this run's run.json names no translation task; was it trained by "
                           "'attnlab train bahdanau' (or seq2seq-*, transformer)?")
    return load_task(spec["task"], n_pairs=spec.get("n_pairs", 20000), k=spec.get("k", 1),
                     seed=run_info.get("data_seed", DATA_SEED))


def task_tokenizers(data: Any, kind: str, shared: bool, vocab_size: int | None = None) -> tuple[Any, Any]:
    """Source and target tokenizers trained on the training split (one for both sides when ``shared``).

    ``kind="auto"``: characters for ``copy`` / ``reverse``, words otherwise.
    """
    from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, make_tokenizer

    if kind == "auto":
        kind = "char" if data.name.split("-k")[0] in ("copy", "reverse") else "word"
    if kind not in ("char", "word", "bpe"):
        raise AttnlabError(f"unknown tokenizer {kind!r}; choose auto, char, word or bpe")

    def train(text: str) -> Any:
        return make_tokenizer(kind, text, vocab_size=vocab_size, specials=SEQ2SEQ_SPECIALS)

    if shared:
        tok = train(data.text("source") + "\n" + data.text("target"))
        return tok, tok
    return train(data.text("source")), train(data.text("target"))


class TranslationRecipe(Recipe):
    """``attnlab train KIND --task ...`` for one translation kind: task -> tokenizers -> model.

    ``config_defaults``: model settings the kind fixes below the user's ``--set`` (the cell and the
    attention of an RNN encoder-decoder); ``sample_pairs``: test pairs translated when training ends.
    """

    def __init__(self, name: str, help: str, model_class: type, presets: dict[str, dict[str, Any]],
                 train_defaults: dict[str, Any], *, options_class: type = TranslationOptions,
                 default_preset: str = "small", config_defaults: dict[str, Any] | None = None,
                 one_thread_on_cpu: bool = False, sample_pairs: int = 300,
                 examples: tuple[str, ...] = ()) -> None:
        self.name, self.help = name, help
        self._model_class, self._presets = model_class, presets
        self.train_defaults = dict(train_defaults)
        self.options_class, self.default_preset = options_class, default_preset
        self.config_defaults = dict(config_defaults or {})
        self.one_thread_on_cpu, self.sample_pairs, self.examples = one_thread_on_cpu, sample_pairs, examples

    def build(self, options: Any, run_dir: Path, resume: bool, model_overrides: dict[str, Any],
              preset: str, seed: int) -> Setup:
        from attnlab.checkpoint import rename_fields
        from attnlab.data.tasks import load_task
        from attnlab.data.tokenizers import load_tokenizer

        data = load_task(options.task, n_pairs=options.n_pairs, k=options.k, seed=DATA_SEED)
        config_class = self.model_class.config_class
        overrides = rename_fields(config_class, model_overrides)  # old names must beat the defaults below
        shared = bool(overrides.get("share_embeddings", False))
        if resume:
            src_tok = load_tokenizer(run_dir / SRC_TOKENIZER_FILE)
            tgt_tok = load_tokenizer(run_dir / TGT_TOKENIZER_FILE)
        else:
            src_tok, tgt_tok = task_tokenizers(data, options.tokenizer, shared, options.vocab_size)
        pairs = [p for split in ("train", "val", "test") for p in data.split(split)]
        longest_target = max(len(tgt_tok.encode(t)) for _, t in pairs)
        defaults = dict(self.config_defaults)
        if "context_length" in {f.name for f in dataclasses.fields(config_class)}:
            # positions for the longest source, or the longest target after <bos>, with room to spare
            longest = max(longest_target + 1, max(len(src_tok.encode(s)) for s, _ in pairs))
            defaults["context_length"] = max(256, 2 * longest)
        config = self.model_config(preset, {**defaults, **overrides}, src_vocab_size=src_tok.vocab_size,
                                   tgt_vocab_size=tgt_tok.vocab_size, pad_id=tgt_tok.pad_id,
                                   bos_id=tgt_tok.bos_id, eos_id=tgt_tok.eos_id,
                                   max_target_len=int(1.25 * longest_target) + 5)
        model = self.model_class(config)
        splits = {"train": data.train, "val": data.val}
        smoothing = getattr(config, "label_smoothing", 0.0)
        objective = (SmoothedTranslationObjective(splits, src_tok, tgt_tok, seed=seed, label_smoothing=smoothing)
                     if smoothing else TranslationObjective(splits, src_tok, tgt_tok, seed=seed))
        test = data.test[: self.sample_pairs]

        def sample(trained: Any) -> str:
            return translation_sample(trained, src_tok, tgt_tok, test, run_dir)

        return Setup(
            model=model, objective=objective,
            files={SRC_TOKENIZER_FILE: src_tok.save, TGT_TOKENIZER_FILE: tgt_tok.save},
            run_info={"task": data.name, "data_seed": DATA_SEED, "train_pairs": len(data.train),
                      "val_pairs": len(data.val), "test_pairs": len(data.test), "shared_vocabulary": shared},
            sample=sample,
        )


def translation_sample(model: Any, src_tok: Any, tgt_tok: Any, pairs: list[tuple[str, str]],
                       run_dir: Path) -> str:
    """Five greedy translations and the scores on ``pairs``: what training prints when it ends."""
    from attnlab.evaluation import translation_metrics
    from attnlab.inference.translate import Translator

    hyps = Translator(model, src_tok, tgt_tok).translate([s for s, _ in pairs])
    metrics = translation_metrics(hyps, [t for _, t in pairs])
    lines = [f"{s}  ->  {h}" + ("" if h == t else f"   (reference: {t})") for (s, t), h in list(zip(pairs, hyps))[:5]]
    lines.append(f"greedy on {len(pairs)} test pairs: exact match {metrics['exact_match']:.1%}, "
                 f"CER {metrics['cer']:.2%}, BLEU {metrics['bleu']:.1f} (full test split: attnlab evaluate {run_dir})")
    return "\n".join(lines)


SEQ2SEQ_TRAINING = dict(steps=1500, batch_size=64, lr=3e-3, warmup_steps=100, eval_every=250, eval_iters=10,
                        ckpt_every=250, weight_decay=0.01, beta2=0.99, grad_clip=1.0)
TRANSFORMER_TRAINING = dict(steps=3000, batch_size=64, lr=1e-3, schedule="inverse_sqrt", warmup_steps=300,
                            weight_decay=0.01, beta1=0.9, beta2=0.98, grad_clip=1.0, eval_every=250,
                            eval_iters=10, ckpt_every=500)


def _rnn_kind(name: str, help: str, cell: str, attention: str) -> TranslationRecipe:
    # a small RNN's operations are too small to split across threads: one thread is much faster
    return TranslationRecipe(name, help, seq2seq.Seq2Seq, seq2seq.PRESETS, SEQ2SEQ_TRAINING,
                             config_defaults={"cell": cell, "attention": attention}, one_thread_on_cpu=True,
                             examples=(f"attnlab train {name} --task dates-fr-en",
                                       f"attnlab train {name} --task dates-de-en --k 4 --preset base",
                                       f'attnlab translate runs/{name}-dates-fr-en "mercredi 9 mai 2018"'))


BAHDANAU_RECIPE = _rnn_kind(
    "bahdanau", "RNN encoder-decoder with Bahdanau (additive) attention (2014), on a translation task",
    cell="gru", attention="bahdanau")
SEQ2SEQ_RNN_RECIPE = _rnn_kind(
    "seq2seq-rnn", "Elman-RNN encoder-decoder without attention (the 1980s baseline), on a translation task",
    cell="rnn", attention="none")
SEQ2SEQ_GRU_RECIPE = _rnn_kind(
    "seq2seq-gru", "GRU encoder-decoder without attention (Cho et al. 2014), on a translation task",
    cell="gru", attention="none")
SEQ2SEQ_LSTM_RECIPE = _rnn_kind(
    "seq2seq-lstm",
    "LSTM encoder-decoder without attention (1997 cells; Sutskever et al. 2014), on a translation task",
    cell="lstm", attention="none")
TRANSFORMER_RECIPE = TranslationRecipe(
    "transformer", "the 2017 Transformer encoder-decoder on a translation task (dates-*, copy, reverse, TSV)",
    transformer.Transformer, transformer.PRESETS, TRANSFORMER_TRAINING, options_class=TransformerOptions,
    sample_pairs=1000,
    examples=("attnlab train transformer --task dates-fr-en",
              "attnlab train transformer --task copy --preset tiny --steps 300",
              "attnlab attention runs/transformer-dates-fr-en --text \"mercredi 9 mai 2018\""))
