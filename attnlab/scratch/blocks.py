"""The rest of a GPT, as the attention overview's companion notes build it: layer norm, GELU, the
feed-forward network, the pre-norm Transformer block and the whole decoder-only model.

``cfg`` is the notes' plain dict, for example GPT-2 small::

    {"vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12,
     "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False}

Modules are created in the notes' order, so a seeded model here starts from the same weights
as the notes' code.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.scratch.attention import MultiHeadAttention

__all__ = ["LayerNorm", "GELU", "FeedForward", "TransformerBlock", "GPTModel", "GPT_CONFIG_124M"]

GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,
    "context_length": 256,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}
"""The notes' GPT-2 small setting (124M parameters with the full 1024 context; 256 here)."""

_CFG_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias")


def _check_cfg(cfg: dict[str, Any], needed: tuple[str, ...] = _CFG_KEYS) -> None:
    missing = [key for key in needed if key not in cfg]
    if missing:
        raise AttnlabError(
            f"the config dict is missing {', '.join(missing)}; it needs the keys {', '.join(needed)}"
        )


class LayerNorm(nn.Module):
    """Layer normalisation over the last dimension, with a learned scale and shift::

        mean = mean(x),  var = mean((x - mean)^2)          (biased variance: divide by n)
        y = scale * (x - mean) / sqrt(var + eps) + shift,   eps = 1e-5

    ``scale`` starts at ones and ``shift`` at zeros, so a fresh layer gives each row mean 0
    and variance 1. The biased variance matches GPT-2 and ``torch.nn.LayerNorm``; with a
    large ``emb_dim`` the difference from the unbiased ``n - 1`` version is negligible anyway.
    """

    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * norm_x + self.shift


class GELU(nn.Module):
    """Gaussian error linear unit, in GPT-2's tanh approximation::

        GELU(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))

    Smooth where ReLU has a corner at 0, and slightly negative for small negative inputs, so
    neurons with negative input still pass a gradient.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    """The position-wise feed-forward network: expand to 4x the width, GELU, project back::

        FFN(x) = GELU(x W_1^T + b_1) W_2^T + b_2,   W_1: (4d, d),  W_2: (d, 4d)

    It acts on every token separately (no mixing between positions; attention does that).
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        _check_cfg(cfg, ("emb_dim",))
        emb_dim = cfg["emb_dim"]
        self.layers = nn.Sequential(
            nn.Linear(emb_dim, 4 * emb_dim),
            GELU(),
            nn.Linear(4 * emb_dim, emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    """One pre-norm decoder block: causal multi-head attention and a feed-forward network,
    each behind a layer norm and inside a residual (shortcut) connection::

        x = x + dropout(MultiHeadAttention(LayerNorm_1(x)))
        x = x + dropout(FeedForward(LayerNorm_2(x)))

    The shortcuts give gradients a direct path through deep stacks, which keeps them from
    vanishing. Attributes: ``att``, ``ff``, ``norm1``, ``norm2``, ``drop_shortcut``.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        _check_cfg(cfg)
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            dropout=cfg["drop_rate"],
            num_heads=cfg["n_heads"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.drop_shortcut(self.att(self.norm1(x)))
        x = x + shortcut

        shortcut = x
        x = self.drop_shortcut(self.ff(self.norm2(x)))
        return x + shortcut


class GPTModel(nn.Module):
    """A decoder-only GPT, as in the notes::

        x = tok_emb(ids) + pos_emb(0 .. T-1)        (b, T, emb_dim)
        x = drop_emb(x)
        x = trf_blocks(x)                           n_layers x TransformerBlock
        logits = out_head(final_norm(x))            (b, T, vocab_size)

    ``out_head`` has no bias and is *not* tied to ``tok_emb`` (GPT-2 ties them; the notes keep
    them separate). ``forward`` takes token ids ``(b, T)`` with ``T <= context_length``.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        _check_cfg(cfg)
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        _, seq_len = in_idx.shape
        if seq_len > self.pos_emb.num_embeddings:
            raise AttnlabError(
                f"the input has {seq_len} tokens but the model's context_length is "
                f"{self.pos_emb.num_embeddings}; keep only the last {self.pos_emb.num_embeddings} tokens"
            )
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(tok_embeds + pos_embeds)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)
