"""Positional information: learned, sinusoidal and rotary.

Learned (GPT): a table ``P[pos]`` added to the token embedding.
Sinusoidal (Vaswani et al. 2017): ``PE[pos, 2i] = sin(pos / 10000^(2i/d))``,
``PE[pos, 2i+1] = cos(pos / 10000^(2i/d))``; fixed, works for any position.
Rotary (Su et al. 2021): rotate each pair of query/key features by an angle ``pos * theta_i`` with
``theta_i = base^(-2i/d_head)``; the dot product of a rotated query and key then depends only on
their distance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class LearnedPositionalEmbedding(nn.Embedding):
    """``forward(length, offset)`` returns the embeddings of positions ``offset .. offset+length-1``."""

    def forward(self, length: int, offset: int = 0) -> Tensor:  # type: ignore[override]
        positions = torch.arange(offset, offset + length, device=self.weight.device)
        return super().forward(positions)


def sinusoidal_table(max_length: int, d_model: int) -> Tensor:
    position = torch.arange(max_length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_length, d_model)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
    return table


class SinusoidalPositionalEncoding(nn.Module):
    def __init__(self, max_length: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_length, d_model), persistent=False)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        return self.table[offset : offset + length]


class Rotary(nn.Module):
    """Rotary position embedding applied to (B, H, T, d_head) queries or keys."""

    def __init__(self, d_head: int, max_length: int, base: float = 10000.0) -> None:
        super().__init__()
        if d_head % 2:
            raise ValueError(f"rotary embeddings need an even head size, got {d_head}")
        inv_freq = base ** (-torch.arange(0, d_head, 2, dtype=torch.float32) / d_head)
        angles = torch.outer(torch.arange(max_length, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        cos = self.cos[offset : offset + t].to(x.dtype)
        sin = self.sin[offset : offset + t].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return rotated.flatten(-2)


ABSOLUTE_POSITIONS = ("sinusoidal", "learned")  # the tables added to the token embeddings


def absolute_positions(kind: str, max_length: int, d_model: int) -> nn.Module:
    """A learned table (``kind="learned"``) or the paper's sinusoids, called as ``module(length, offset)``."""
    if kind == "learned":
        return LearnedPositionalEmbedding(max_length, d_model)
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(max_length, d_model)
    raise ValueError(f"absolute positions are 'sinusoidal' or 'learned', got {kind!r}")
