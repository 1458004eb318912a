"""Multi-head attention, the fast way: fused projections and ``scaled_dot_product_attention``.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head) + M) V

where ``M`` is 0 where a query may look and -inf where it may not (future positions under a causal
mask, padding positions under a padding mask). Heads are split with
``view(B, T, n_head, d_head).transpose(1, 2)`` and merged back before the output projection, as in
:class:`attnlab.scratch.MultiHeadAttention`, which is the same computation written step by step.

The normal path calls PyTorch's fused kernel and never materialises the weights. Asking for
``need_weights=True`` takes a second, explicit path that computes ``softmax(...)`` itself and returns
it for pictures; both paths give the same output (tested).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer.

    ``append(k, v)`` writes the new positions into a pre-allocated buffer and returns every key and
    value so far, so that decoding one more token costs one position, not the whole context.
    For cross-attention the encoder's keys and values are computed once and stored with
    ``set_static``.
    """

    def __init__(self, max_length: int | None = None) -> None:
        self.max_length = max_length
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.length = 0
        self.static = False

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        new = k.shape[2]
        if self.k is None:
            capacity = max(self.max_length or 0, new)
            shape = (k.shape[0], k.shape[1], capacity, k.shape[3])
            self.k = k.new_empty(shape)
            self.v = v.new_empty((v.shape[0], v.shape[1], capacity, v.shape[3]))
        end = self.length + new
        if end > self.k.shape[2]:  # grow (doubling) when no maximum was given
            extra = max(end, 2 * self.k.shape[2]) - self.k.shape[2]
            self.k = torch.cat([self.k, self.k.new_empty(*self.k.shape[:2], extra, self.k.shape[3])], 2)
            self.v = torch.cat([self.v, self.v.new_empty(*self.v.shape[:2], extra, self.v.shape[3])], 2)
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def set_static(self, k: Tensor, v: Tensor) -> None:
        self.k, self.v, self.length, self.static = k, v, k.shape[2], True

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (beam search reorders hypotheses)."""
        if self.k is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)


def build_mask(
    q_len: int,
    k_len: int,
    *,
    causal: bool,
    key_padding_mask: Tensor | None = None,
    offset: int = 0,
    device: torch.device | None = None,
) -> Tensor | None:
    """Boolean mask (True = may attend) broadcastable to ``(B, heads, q_len, k_len)``, or None.

    Query ``i`` sits at absolute position ``offset + i``; under a causal mask it sees keys
    ``0 .. offset + i``. ``key_padding_mask`` is ``(B, k_len)`` with True for real tokens.
    """
    mask = None
    if causal:
        q_pos = torch.arange(q_len, device=device).unsqueeze(1) + offset
        k_pos = torch.arange(k_len, device=device).unsqueeze(0)
        mask = (k_pos <= q_pos).view(1, 1, q_len, k_len)
    if key_padding_mask is not None:
        pad = key_padding_mask.bool().view(key_padding_mask.shape[0], 1, 1, k_len)
        mask = pad if mask is None else mask & pad
    return mask


def attention_with_weights(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: nn.Module | None,
                           scale: float) -> tuple[Tensor, Tensor]:
    """softmax(q k^T * scale, masked) v, returning the weights too (the explicit, slower path)."""
    scores = (q @ k.transpose(-2, -1)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    dropped = dropout(weights) if dropout is not None else weights
    return dropped @ v, weights


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention with ``n_head`` heads over a model width ``d_model``.

    Self-attention projects Q, K and V with one fused matrix (``qkv``: d_model -> 3 d_model);
    cross-attention projects queries from ``x`` (``q``) and keys/values from ``context`` (``kv``).
    ``rope`` (a :class:`attnlab.layers.position.Rotary`) rotates queries and keys by position;
    ``qk_norm`` RMS-normalises each head's queries and keys before the dot product.
    """

    def __init__(self, d_model: int, n_head: int, *, dropout: float = 0.0, bias: bool = True,
                 causal: bool = False, cross: bool = False, qk_norm: bool = False) -> None:
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(f"d_model {d_model} is not divisible by n_head {n_head}")
        self.d_model, self.n_head, self.d_head = d_model, n_head, d_model // n_head
        self.causal, self.cross, self.dropout = causal, cross, dropout
        if cross:
            self.q = nn.Linear(d_model, d_model, bias=bias)
            self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)
        else:
            self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.qk_norm = qk_norm
        if qk_norm:
            self.q_norm = nn.RMSNorm(self.d_head, eps=1e-6)
            self.k_norm = nn.RMSNorm(self.d_head, eps=1e-6)

    def _heads(self, t: Tensor) -> Tensor:
        b, length, _ = t.shape
        return t.view(b, length, self.n_head, self.d_head).transpose(1, 2)

    def forward(self, x: Tensor, *, context: Tensor | None = None, key_padding_mask: Tensor | None = None,
                cache: KVCache | None = None, rope: nn.Module | None = None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """``x``: (B, T, d_model). Returns ``(output (B, T, d_model), weights (B, H, T, S) or None)``.

        ``key_padding_mask`` (B, S): True for real key positions. With a ``cache``, ``x`` holds only
        the new positions and attends over everything cached so far.
        """
        b, t, _ = x.shape
        offset = cache.length if (cache is not None and not self.cross) else 0
        if self.cross:
            q = self._heads(self.q(x))
            if cache is not None and cache.static:
                k, v = cache.k, cache.v
            else:
                if context is None:
                    raise ValueError("cross-attention needs a context")
                k, v = (self._heads(z) for z in self.kv(context).split(self.d_model, dim=2))
                if cache is not None:
                    cache.set_static(k, v)
        else:
            q, k, v = (self._heads(z) for z in self.qkv(x).split(self.d_model, dim=2))
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None and not self.cross:
            q, k = rope(q, offset), rope(k, offset)
        if cache is not None and not self.cross:
            k, v = cache.append(k, v)
        s = k.shape[2]
        causal = self.causal and not self.cross
        dropout_p = self.dropout if self.training else 0.0
        scale = 1.0 / math.sqrt(self.d_head)
        weights = None
        if need_weights:
            mask = build_mask(t, s, causal=causal, key_padding_mask=key_padding_mask, offset=offset, device=x.device)
            y, weights = attention_with_weights(q, k, v, mask, self.attn_dropout if self.training else None, scale)
        elif causal and key_padding_mask is None and offset == 0 and t == s:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale)
        else:
            mask = build_mask(t, s, causal=causal and t > 1, key_padding_mask=key_padding_mask, offset=offset,
                              device=x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
        y = y.transpose(1, 2).contiguous().view(b, t, self.d_model)
        return self.proj(y), weights
