"""``attnlab train gpt | rnn | lstm | gru``: a language model on a text corpus.

Text -> tokenizer (characters, or byte-level BPE trained on the training split) -> token ids, read
through :func:`attnlab.data.lm_data.load_lm_data`: a folder made by ``attnlab prepare`` is
memory-mapped as it is, and any other corpus is prepared once into a cache keyed by its fingerprint
(the second run skips tokenization) ->
next-token prediction: random windows for the GPT (:class:`attnlab.data.batching.LanguageModelObjective`),
consecutive windows with carried state for the recurrent models (:mod:`attnlab.recipes.tbptt`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnlab.data.play_words import share_note
from attnlab.models.gpt import GPT
from attnlab.models.gpt import PRESETS as GPT_PRESETS
from attnlab.models.recurrent import GRULM, LSTMLM, RNNLM
from attnlab.models.recurrent import PRESETS as RECURRENT_PRESETS
from attnlab.options import option
from attnlab.recipes.base import CorpusOptions, Recipe, Setup, first_prompt
from attnlab.training.session import is_rank_zero

TOKENIZER_FILE = "tokenizer.json"
PROMPT_SEARCH_TOKENS = 400_000  # the sample's prompt is a famous line found in this much of the training text


@dataclass
class LMOptions(CorpusOptions):
    """Options of every language-model kind."""

    tokenizer: str = option("char", "char: one token per character; bpe: byte-level BPE trained on the corpus",
                            choices=("char", "bpe"))
    vocab_size: int | None = option(None, "BPE vocabulary size (default 1024)", minimum=2)


@dataclass
class CorpusTokens:
    """A corpus read, split and tokenized: what every corpus recipe starts from."""

    text: str
    tokenizer: Any
    train_ids: Any
    val_ids: Any


def corpus_tokens(data: str, val_fraction: float, run_dir: Path, resume: bool,
                  make: Callable[[str, str], Any], *, tokenizer_file: str = TOKENIZER_FILE,
                  unknown: str = "error") -> CorpusTokens:
    """Read ``data``, hold out its tail, and tokenize both parts.

    ``make(text, train_text)`` builds a new tokenizer; on resume the run's own tokenizer is loaded.
    """
    import torch

    from attnlab.data.corpora import load_corpus, split_train_val
    from attnlab.data.tokenizers import load_tokenizer

    text = load_corpus(data)
    train_text, val_text = split_train_val(text, val_fraction)
    tokenizer = load_tokenizer(run_dir / tokenizer_file) if resume else make(text, train_text)
    train_ids = torch.tensor(tokenizer.encode(train_text, unknown=unknown), dtype=torch.long)
    val_ids = torch.tensor(tokenizer.encode(val_text, unknown=unknown), dtype=torch.long)
    return CorpusTokens(text, tokenizer, train_ids, val_ids)


class LanguageModelRecipe(Recipe):
    """Train a language model on a corpus: the shared shape of ``attnlab train gpt|rnn|lstm|gru``."""

    options_class = LMOptions

    def __init__(self, name: str, help: str, model_class: type, presets: dict[str, dict[str, Any]],
                 default_preset: str, train_defaults: dict[str, Any],
                 preset_training: dict[str, dict[str, Any]] | None = None, examples: tuple[str, ...] = (),
                 one_thread_on_cpu: bool = False, former_default_preset: str = "") -> None:
        self.name, self.help = name, help
        self.former_default_preset = former_default_preset
        self._model_class, self._presets = model_class, presets
        self.default_preset = default_preset
        self.train_defaults = train_defaults
        self.preset_training = preset_training or {}
        self.examples = examples
        self.one_thread_on_cpu = one_thread_on_cpu

    def build(self, options: LMOptions, run_dir: Path, resume: bool, model_overrides: dict[str, Any],
              preset: str, seed: int) -> Setup:
        from attnlab.data.lm_data import load_lm_data
        from attnlab.data.shards import is_prepared
        from attnlab.data.tokenizers import load_tokenizer

        # a prepared folder brings its own settings: only what differs from the defaults must agree with it
        defaults = LMOptions()
        given = {name: getattr(options, name) if not is_prepared(options.data)
                 or getattr(options, name) != getattr(defaults, name) else None
                 for name in ("tokenizer", "vocab_size", "val_fraction")}
        data = load_lm_data(options.data, given["tokenizer"], given["vocab_size"], given["val_fraction"],
                            tokenizer=load_tokenizer(run_dir / TOKENIZER_FILE) if resume else None,
                            progress=is_rank_zero())
        tokenizer = data.tokenizer
        config = self.model_config(preset, model_overrides, vocab_size=tokenizer.vocab_size)
        model = self.model_class(config)
        objective = self.make_objective(data.train, data.val, config.context_length, seed)
        prompt = first_prompt(data.head_text(PROMPT_SEARCH_TOKENS))

        def sample(trained: Any, length: int = 400) -> str:
            from attnlab.inference.sampling import SamplingConfig, generate_text

            return prompt + generate_text(trained, tokenizer, prompt,
                                          SamplingConfig(max_new_tokens=length, temperature=0.8, seed=seed))

        return Setup(
            model=model, objective=objective, files={TOKENIZER_FILE: tokenizer.save},
            run_info={k: v for k, v in data.info.items() if k != "cache"},
            sample=sample, describe_sample=share_note, eval_sample=lambda trained: sample(trained, 200),
        )

    def make_objective(self, train_ids: Any, val_ids: Any, context: int, seed: int) -> Any:
        from attnlab.data.batching import LanguageModelObjective

        return LanguageModelObjective(train_ids, val_ids, context, seed=seed)


class RecurrentLMRecipe(LanguageModelRecipe):
    """The GPT recipe's data and options, with the truncated-BPTT objective."""

    def make_objective(self, train_ids: Any, val_ids: Any, context: int, seed: int) -> Any:
        from attnlab.recipes.tbptt import TBPTTObjective

        return TBPTTObjective(train_ids, val_ids, context, seed=seed)


# Training settings that belong to a preset (TrainConfig fields); `attnlab train gpt --preset NAME` starts
# from them, and the command line (--optimizer, --lr, --steps, --set ...) still overrides them.
# gpt-speedrun: Muon at 0.02 for the block matrices, AdamW at 3e-3 for the rest, a 400-step schedule
# (it reaches the classic model's 2,000-step validation loss by then on the speedrun benchmark).
GPT_PRESET_TRAINING: dict[str, dict[str, Any]] = {
    "gpt-speedrun": dict(optimizer="muon", muon_lr=0.02, lr=3e-3, steps=400, warmup_steps=50),
    # gpt-play (the default): the same optimizer for 1,400 steps of 4 sequences of 256 characters (the same
    # 1,024 tokens a step as 16 x 64; 80-100 s on 2 CPU cores), weight decay 0.3, the cosine decaying to zero;
    # the lowest mean held-out loss on four plays (never Julius Caesar) of the recipes tried there at this
    # CPU cost (BENCHMARKS.md, "The main job")
    "gpt-play": dict(optimizer="muon", muon_lr=0.02, lr=3e-3, steps=1400, batch_size=4, weight_decay=0.3,
                     warmup_steps=50, min_lr=0.0),
}

GPT_RECIPE = LanguageModelRecipe(
    name="gpt", help="a decoder-only GPT language model (2018) on a text corpus", model_class=GPT,
    presets=GPT_PRESETS, default_preset="gpt-play", former_default_preset="gpt-jc",
    preset_training=GPT_PRESET_TRAINING,
    train_defaults=dict(steps=2000, batch_size=16, lr=1e-3, warmup_steps=100, eval_every=250, eval_iters=20,
                        ckpt_every=250, beta2=0.99, weight_decay=0.1),
    examples=("attnlab train gpt                                  # Julius Caesar, the main job",
              "attnlab train gpt --data my.txt --tokenizer bpe --vocab-size 2000",
              "attnlab train gpt --preset gpt-speedrun            # RoPE, QK-norm, ReLU², Muon: 400 steps",
              "attnlab train gpt --preset gpt-jc                  # the classic GPT-2 block: converts to GPT-2",
              "attnlab train gpt --resume runs/gpt-julius-caesar  # continue a killed or finished run"),
)

_RECURRENT_DEFAULTS: dict[str, Any] = dict(steps=2000, batch_size=16, lr=2e-3, warmup_steps=50, eval_every=250,
                                     eval_iters=20, ckpt_every=250, beta2=0.99, weight_decay=0.01, grad_clip=1.0)


def _recurrent(name: str, help: str, model_class: type, **changes: Any) -> RecurrentLMRecipe:
    return RecurrentLMRecipe(name=name, help=help, model_class=model_class, presets=RECURRENT_PRESETS,
                             default_preset="jc", train_defaults={**_RECURRENT_DEFAULTS, **changes},
                             examples=(f"attnlab train {name}", f"attnlab train {name} --preset small --steps 600"))


RNN_RECIPE = _recurrent("rnn", "an Elman RNN language model (1990) on a text corpus, trained with truncated BPTT",
                        RNNLM, lr=1e-3)
LSTM_RECIPE = _recurrent("lstm", "an LSTM language model (1997) on a text corpus, trained with truncated BPTT",
                         LSTMLM)
GRU_RECIPE = _recurrent("gru", "a GRU language model (2014) on a text corpus, trained with truncated BPTT", GRULM)
