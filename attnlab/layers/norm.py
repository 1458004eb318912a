"""Normalisation layers, chosen by name.

LayerNorm: ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` (biased variance, eps 1e-5).
RMSNorm:   ``y = x / sqrt(mean(x^2) + eps) * gamma`` (no centring, no shift).
``none`` is the identity: the attention overview's ablation of a block without layer norm.
"""

from __future__ import annotations

from torch import nn

NORMS = ("layernorm", "rmsnorm", "none")


def make_norm(kind: str, dim: int, *, bias: bool = True, eps: float = 1e-5) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")
