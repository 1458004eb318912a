"""Additive (Bahdanau) attention, the fast way: ``U h_j`` once per sentence, not once per decoder step.

    e_ij     = v^T tanh(W s_{i-1} + k_j),   k_j = U h_j   (precomputed by :meth:`AdditiveAttention.keys`)
    alpha_ij = softmax_j(e_ij + m_j),       m_j = 0 at real tokens, -inf at padding
    c_i      = sum_j alpha_ij h_j           (one batched matrix product)

The decoder calls :meth:`AdditiveAttention.keys` and :meth:`AdditiveAttention.mask_bias` once after
the encoder and :meth:`AdditiveAttention.forward` at every step. The output equals
:class:`attnlab.scratch.bahdanau.BahdanauAttention` (same parameter names, tested equal).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AdditiveAttention(nn.Module):
    """Bahdanau's alignment model with precomputed keys; see the module docstring."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.W = nn.Linear(query_dim, attn_dim, bias=False)
        self.U = nn.Linear(key_dim, attn_dim, bias=True)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def keys(self, h: Tensor) -> Tensor:
        """``k_j = U h_j`` at every source position, once per sentence: (B, S, key_dim) -> (B, S, attn)."""
        return self.U(h)

    @staticmethod
    def mask_bias(mask: Tensor) -> Tensor:
        """(B, S) true-at-real-tokens mask -> additive bias: 0 at real tokens, -inf at padding."""
        bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        return bias.masked_fill(~mask.bool(), float("-inf"))

    def forward(self, s_prev: Tensor, h: Tensor, keys: Tensor,
                bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One decoder step: ``s_prev`` (B, query_dim), ``h`` (B, S, key_dim), ``keys`` = :meth:`keys` (h),
        ``bias`` = :meth:`mask_bias` (mask) or None -> context (B, key_dim), weights (B, S)."""
        e = self.v(torch.tanh(keys + self.W(s_prev).unsqueeze(1))).squeeze(-1)
        if bias is not None:
            e = e + bias.to(e.dtype)
        alpha = torch.softmax(e, dim=-1)
        c = torch.bmm(alpha.unsqueeze(1), h).squeeze(1)
        return c, alpha
