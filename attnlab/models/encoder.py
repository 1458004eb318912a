"""The encoder-only Transformer (BERT, Devlin et al. 2018): one text, self-attention both ways.

    x_0 = E[ids] * sqrt(d) + P[0..T)                    token embeddings scaled, positions added
    x_l = Block_l(x_{l-1})              l = 1..N        self-attention without a causal mask + FFN
    h   = LayerNorm(gelu(x_N W_t + b_t))                BERT's prediction head ...
    P(token at i) = softmax(h_i E^T + b)                ... tied to the token embedding

``d`` is the width ``n_embd``. Trained as a masked language model
(:mod:`attnlab.recipes.masked_lm`): 15% of the positions are chosen; 80% of those become
``[MASK]``, 10% a random token, 10% stay, and the loss is the cross-entropy at the chosen positions
only. ``attnlab fill RUN "Friends, [MASK], countrymen"`` prints its best guesses
(:func:`attnlab.inference.fill.fill_masks`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.checkpoint import Savable, config_from_preset
from attnlab.errors import AttnlabError, require_positive_fields
from attnlab.layers.block import Block, check_block_settings
from attnlab.layers.init import xavier_init
from attnlab.layers.norm import make_norm
from attnlab.layers.position import absolute_positions


@dataclass
class EncoderConfig:
    """An encoder-only Transformer language model (BERT-like), trained to fill in masked tokens.

    The width is ``n_embd`` as in every attnlab config; runs saved with ``d_model`` still load.
    """

    renamed_fields: ClassVar[dict[str, str | None]] = {"d_model": "n_embd"}

    vocab_size: int = 30522
    context_length: int = 128
    n_embd: int = 128
    n_head: int = 4
    n_layer: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    pos: str = "learned"  # learned (BERT) | sinusoidal
    norm_position: str = "post"  # post (BERT) | pre
    mlp: str = "gelu"
    bias: bool = True
    mask_id: int = 2  # id of [MASK] in the vocabulary
    mask_prob: float = 0.15  # share of positions chosen for prediction

    def __post_init__(self) -> None:
        require_positive_fields(self, ("vocab_size", "context_length", "n_embd", "n_head", "n_layer", "d_ff"))
        check_block_settings("EncoderConfig", self)
        if not 0 <= self.mask_id < self.vocab_size:
            raise AttnlabError(
                f"EncoderConfig.mask_id {self.mask_id} is not an id of the vocabulary "
                f"(0..{self.vocab_size - 1})"
            )
        if not 0.0 < self.mask_prob < 1.0:
            raise AttnlabError(f"EncoderConfig.mask_prob must be in (0, 1), got {self.mask_prob}")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(context_length=32, n_embd=32, n_head=2, n_layer=2, d_ff=64, dropout=0.0),
    "small": dict(context_length=64, n_embd=128, n_head=4, n_layer=4, d_ff=512, dropout=0.1),
    "base": dict(context_length=512, n_embd=768, n_head=12, n_layer=12, d_ff=3072, dropout=0.1),  # BERT-base
}


def preset_config(name: str, **overrides: Any) -> EncoderConfig:
    return config_from_preset(EncoderConfig, PRESETS, name, "encoder", overrides)


class EncoderLM(Savable, nn.Module):
    """Bidirectional self-attention over one text; predicts the tokens hidden behind ``[MASK]``.

    ``logits = LayerNorm(gelu(h_N W_t)) E^T + b``: BERT's prediction head, tied to the token embedding.
    """

    model_type: ClassVar[str] = "encoder"
    config_class: ClassVar[type] = EncoderConfig

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos_emb = absolute_positions(c.pos, c.context_length, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.n_embd, c.n_head, d_ff=c.d_ff, dropout=c.dropout, bias=c.bias, causal=False,
                  norm_position=c.norm_position, mlp=c.mlp)
            for _ in range(c.n_layer)
        )
        pre = c.norm_position == "pre"  # pre-norm leaves the residual stream unnormalised: close it
        self.norm_f = make_norm("layernorm", c.n_embd, bias=c.bias) if pre else nn.Identity()
        self.transform = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.transform_norm = make_norm("layernorm", c.n_embd, bias=c.bias)
        self.out = nn.Linear(c.n_embd, c.vocab_size, bias=True)
        xavier_init(self, c.n_embd)
        nn.init.zeros_(self.out.bias)
        self.out.weight = self.tok_emb.weight

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, idx: Tensor, key_padding_mask: Tensor | None = None, need_weights: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``idx`` (B, T) -> logits (B, T, vocab); with ``need_weights`` also [(B, H, T, T)] per layer."""
        t = idx.shape[1]
        if t > self.config.context_length:
            raise AttnlabError(
                f"{t} tokens is longer than this model's context of {self.config.context_length}"
            )
        x = self.drop(self.tok_emb(idx) * math.sqrt(self.config.n_embd) + self.pos_emb(t))
        maps = []
        for block in self.blocks:
            x, weights = block(x, key_padding_mask=key_padding_mask, need_weights=need_weights)
            if need_weights:
                maps.append(weights["self"])
        h = self.transform_norm(F.gelu(self.transform(self.norm_f(x))))
        logits = self.out(h)
        return (logits, maps) if need_weights else logits

    def loss(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy at the chosen positions (targets of -1 are ignored)."""
        logits = self(inputs)
        return F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
        )

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> list[Tensor]:
        """Self-attention weights of every layer, [(B, H, T, T)] (rows: queries, each sums to 1)."""
        was_training = self.training
        self.eval()
        try:
            _, maps = self(idx, need_weights=True)
        finally:
            self.train(was_training)
        return maps

    # ---- persistence ---------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> EncoderLM:
        return cls(preset_config(name, **overrides))

    def with_config(self, **changes: Any) -> EncoderConfig:
        return dataclasses.replace(self.config, **changes)
