"""Additive attention (Bahdanau, Cho & Bengio 2014), one decoder step at a time, as the paper writes it.

For decoder step ``i`` with previous decoder state ``s_{i-1}`` and encoder annotations
``h_1 .. h_S`` (the bidirectional encoder's states, ``[h_j^forward; h_j^backward]``):

    e_ij     = v^T tanh(W s_{i-1} + U h_j)                    alignment score of source position j
    alpha_ij = exp(e_ij) / sum_k exp(e_ik)                    softmax over the source positions
    c_i      = sum_j alpha_ij h_j                             context vector for step i

Padding positions get ``e_ij = -inf`` before the softmax, so ``alpha_ij = 0`` there and they add
nothing to ``c_i``. This module recomputes ``U h_j`` at every decoder step, which is the plain reading
of the equation. :class:`attnlab.layers.additive.AdditiveAttention` is the same computation with
``U h_j`` computed once per sentence (tested equal); the parameter names match, so one's
``state_dict`` loads into the other.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BahdanauAttention(nn.Module):
    """``(s_{i-1}, h, mask) -> (c_i, alpha_i)`` with the score ``e_ij = v^T tanh(W s_{i-1} + U h_j)``.

    Args:
        query_dim: size of the decoder state ``s`` (``n`` in the paper).
        key_dim: size of an annotation ``h_j`` (``2n`` with a bidirectional encoder).
        attn_dim: size of the hidden layer of the alignment model (``n'`` in the paper).
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.W = nn.Linear(query_dim, attn_dim, bias=False)  # W_a in the paper
        self.U = nn.Linear(key_dim, attn_dim, bias=True)  # U_a (the bias is the layer's one bias)
        self.v = nn.Linear(attn_dim, 1, bias=False)  # v_a

    def scores(self, s_prev: Tensor, h: Tensor) -> Tensor:
        """``e_ij`` for every source position: ``s_prev`` (B, query_dim), ``h`` (B, S, key_dim) -> (B, S)."""
        Ws = self.W(s_prev)  # (B, attn_dim)
        Uh = self.U(h)  # (B, S, attn_dim): recomputed at every decoder step
        return self.v(torch.tanh(Ws.unsqueeze(1) + Uh)).squeeze(-1)

    def forward(self, s_prev: Tensor, h: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Context ``c_i`` (B, key_dim) and weights ``alpha_i`` (B, S) for one decoder step.

        ``mask`` (B, S) is true at real source tokens and false at padding.
        """
        e = self.scores(s_prev, h)
        if mask is not None:
            e = e.masked_fill(~mask.bool(), float("-inf"))
        alpha = torch.softmax(e, dim=-1)
        c = torch.einsum("bs,bsk->bk", alpha, h)  # c_i = sum_j alpha_ij h_j
        return c, alpha
