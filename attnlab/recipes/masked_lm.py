"""How to train the encoder-only Transformer: a corpus -> word or char tokens -> masked-token training.

BERT's objective (Devlin et al. 2018): in each window of ``context_length`` tokens, choose
``mask_prob`` (15%) of the positions; of those, 80% become ``[MASK]``, 10% a random token and 10%
stay as they are. The model predicts the original token at the chosen positions only:

    loss = - (1 / |C|) sum_{i in C} log P(x_i | corrupted window)        C: the chosen positions
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.inference.fill import MASK, fill_masks
from attnlab.models.encoder import PRESETS, EncoderConfig, EncoderLM
from attnlab.options import option
from attnlab.recipes.base import CorpusOptions, Recipe, Setup, text_fingerprint
from attnlab.recipes.lm import TOKENIZER_FILE, corpus_tokens


@dataclass
class EncoderOptions(CorpusOptions):
    """``attnlab train encoder``: the corpus, and what one ``[MASK]`` hides."""

    tokenizer: str = option("word", "word: [MASK] hides a whole word; char: one character",
                            choices=("word", "char"))
    vocab_size: int | None = option(None, "keep only the most frequent words (default: every word of the "
                                          "corpus)")


def mask_tokens(
    ids: Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    mask_prob: float,
    generator: torch.Generator,
    protected: Sequence[int] = (),
) -> tuple[Tensor, Tensor]:
    """BERT's corruption: choose ``mask_prob`` of the positions (at least one per row, never a
    ``protected`` id); of those 80% -> ``[MASK]``, 10% -> a random token, 10% unchanged.
    Returns ``(inputs, targets)``; targets are -1 where nothing is predicted."""
    draw = torch.rand(ids.shape, generator=generator)
    allowed = torch.ones_like(ids, dtype=torch.bool)
    for special in protected:
        allowed &= ids != special
    draw = draw.masked_fill(~allowed, 2.0)
    chosen = (draw < mask_prob) & allowed
    first = draw.argmin(dim=1, keepdim=True)  # every row predicts at least one token
    chosen.scatter_(1, first, chosen.gather(1, first) | allowed.gather(1, first))
    action = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator)
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    targets = torch.where(chosen, ids, torch.full_like(ids, -1))
    return inputs, targets


class MaskedLMObjective:
    """Masked-token prediction on random windows of the train / validation token streams."""

    def __init__(self, train_ids: Tensor, val_ids: Tensor, config: EncoderConfig, seed: int = 0,
                 protected: Sequence[int] = ()) -> None:
        self.data = {"train": train_ids.long(), "val": val_ids.long()}
        self.config, self.seed, self.protected = config, seed, tuple(protected)
        t = config.context_length
        for split, ids in self.data.items():
            if len(ids) < t + 1:
                raise AttnlabError(
                    f"the {split} split has {len(ids)} tokens, fewer than one context of {t}: "
                    "use a longer text or --set context_length=N"
                )

    def batch(self, split: str, step: int, batch_size: int) -> dict[str, Tensor]:
        from attnlab.data.batching import batch_generator

        ids, t, c = self.data[split], self.config.context_length, self.config
        generator = batch_generator(self.seed, split, step)
        starts = torch.randint(len(ids) - t + 1, (batch_size,), generator=generator)
        windows = ids[starts.unsqueeze(1) + torch.arange(t).unsqueeze(0)]
        inputs, targets = mask_tokens(windows, mask_id=c.mask_id, vocab_size=c.vocab_size,
                                      mask_prob=c.mask_prob, generator=generator, protected=self.protected)
        return {"inputs": inputs, "targets": targets}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["inputs"])
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch["targets"].reshape(-1),
                               ignore_index=-1)

    def count_tokens(self, batch: dict[str, Tensor]) -> int:
        return batch["inputs"].numel()


class EncoderRecipe(Recipe):
    """``attnlab train encoder``: a text corpus -> word or char tokens -> masked-token training."""

    name = "encoder"
    help = "an encoder-only (BERT-like) Transformer trained to fill in [MASK]ed words of a corpus"
    options_class = EncoderOptions
    _model_class, _presets = EncoderLM, PRESETS
    default_preset = "small"
    tokenizer_file = TOKENIZER_FILE
    train_defaults = dict(steps=2000, batch_size=32, lr=5e-4, schedule="cosine", warmup_steps=100,
                          weight_decay=0.01, beta2=0.99, eval_every=250, eval_iters=10, ckpt_every=500)
    examples = ("attnlab train encoder",
                'attnlab fill runs/encoder-julius-caesar "Friends, [MASK], countrymen"')

    def build(self, options: Any, run_dir: Path, resume: bool, model_overrides: dict[str, Any],
              preset: str, seed: int) -> Setup:
        from attnlab.data.tokenizers import PAD, UNK, make_tokenizer

        def make(text: str, train_text: str) -> Any:  # the vocabulary of the training part only
            return make_tokenizer(options.tokenizer, train_text, vocab_size=options.vocab_size,
                                  specials=(PAD, UNK, MASK))

        corpus = corpus_tokens(options.data, options.val_fraction, run_dir, resume, make,
                               tokenizer_file=self.tokenizer_file, unknown="unk")
        tokenizer, train_ids, val_ids = corpus.tokenizer, corpus.train_ids, corpus.val_ids
        config = self.model_config(preset, model_overrides, vocab_size=tokenizer.vocab_size,
                                   mask_id=tokenizer._special_id(MASK))
        model = EncoderLM(config)
        objective = MaskedLMObjective(train_ids, val_ids, config, seed=seed, protected=(tokenizer.pad_id,))
        prompt = f"Friends, {MASK}, countrymen" if options.tokenizer == "word" else f"Friends, Rom{MASK}ns"

        def sample(trained: Any) -> str:
            guesses = fill_masks(trained, tokenizer, prompt)
            rows = ["  " + ", ".join(f"{token.strip() or token!r} {p:.2f}" for token, p in row) for row in guesses]
            return "\n".join([prompt, *rows])

        return Setup(
            model=model, objective=objective, files={self.tokenizer_file: tokenizer.save},
            run_info={"data": options.data, "data_fingerprint": text_fingerprint(corpus.text),
                      "tokenizer": options.tokenizer, "train_tokens": len(train_ids), "val_tokens": len(val_ids)},
            sample=sample,
        )


ENCODER_RECIPE = EncoderRecipe()
