"""Self-attention built up step by step, exactly as the attention overview's companion notes build it.

Five classes, each one idea more than the last:

1. :class:`SelfAttention_v1`: trainable weights as raw ``nn.Parameter`` matrices.
2. :class:`SelfAttention_v2`: the same maths with ``nn.Linear`` projections.
3. :class:`CausalAttention`: a token may only look at itself and the past; dropout on the weights.
4. :class:`MultiHeadAttentionWrapper`: several causal heads side by side, concatenated.
5. :class:`MultiHeadAttention`: the efficient version: one projection, split into heads.

Notation used in every docstring: ``X`` is the input (one row per token, ``T`` tokens of
``d_in`` features), ``d_k`` is the width of a key (``d_out``, or ``head_dim`` per head).

    Q = X W_q        K = X W_k        V = X W_v
    scores  = Q K^T                                   (T x T: query i against key j)
    weights = softmax(scores / sqrt(d_k))             (over the keys: every row sums to 1)
    context = weights V                               (T x d_out)

Why divide by ``sqrt(d_k)``: the dot product of two random ``d_k``-dimensional vectors has a
variance that grows with ``d_k``; large scores make the softmax peaky (almost one-hot), and a
peaky softmax has vanishing gradients. Dividing by ``sqrt(d_k)`` keeps the variance near 1.

Every class keeps the attention weights of its latest forward pass in
``self.last_attn_weights`` (detached; after the softmax, before dropout). Keeping them costs a
reference per call, which is fine here: this package is for reading and teaching. The fast
modules in :mod:`attnlab.layers` do not do this.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.errors import AttnlabError

__all__ = [
    "SelfAttention_v1",
    "SelfAttention_v2",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
]


def _check_length(num_tokens: int, context_length: int) -> None:
    if num_tokens > context_length:
        raise AttnlabError(
            f"the input has {num_tokens} tokens but this attention module was built for at most "
            f"context_length={context_length}; shorten the input or build it with a larger context_length"
        )


class SelfAttention_v1(nn.Module):
    """Self-attention with trainable weight matrices held as plain parameters.

    ``W_query``, ``W_key`` and ``W_value`` are ``(d_in, d_out)`` matrices initialised with
    ``torch.rand`` and created in that order (so ``torch.manual_seed(123)`` gives the attention overview's
    numbers)::

        Q = X W_query,  K = X W_key,  V = X W_value
        context = softmax(Q K^T / sqrt(d_k)) V,   d_k = d_out

    ``x`` is ``(T, d_in)`` or batched ``(batch, T, d_in)``. No mask: every token sees every token.
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))
        self.last_attn_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = x @ self.W_query
        keys = x @ self.W_key
        values = x @ self.W_value
        attn_scores = queries @ keys.transpose(-2, -1)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        self.last_attn_weights = attn_weights.detach()
        return attn_weights @ values


class SelfAttention_v2(nn.Module):
    """Self-attention with ``nn.Linear`` projections (same maths as v1).

    ``nn.Linear`` stores its weight as ``(d_out, d_in)`` and computes ``X W^T (+ b)``, so
    ``W_query.weight.T`` plays the part of v1's ``W_query``. Linear layers also initialise
    better than ``torch.rand`` (Kaiming-uniform), which helps training::

        Q = X W_q^T (+ b_q),  K = X W_k^T (+ b_k),  V = X W_v^T (+ b_v)
        context = softmax(Q K^T / sqrt(d_out)) V
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.last_attn_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = self.W_query(x)
        keys = self.W_key(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.transpose(-2, -1)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        self.last_attn_weights = attn_weights.detach()
        return attn_weights @ values


class CausalAttention(nn.Module):
    """Single-head causal (masked) self-attention with dropout on the attention weights.

    A token may attend to itself and to earlier tokens only. The buffer ``mask`` is
    ``triu(ones(context_length, context_length), diagonal=1)``: a 1 marks a future position.
    Those scores are set to minus infinity *before* the softmax, so they get weight exactly 0
    and each row still sums to 1::

        scores  = Q K^T;   scores[i, j] = -inf  where j > i
        weights = dropout(softmax(scores / sqrt(d_out)))
        context = weights V

    Dropout (active in training mode only) zeroes each weight with probability ``dropout``
    and scales the survivors by ``1 / (1 - dropout)``.

    ``x`` is ``(batch, T, d_in)`` (or ``(T, d_in)``) with ``T <= context_length``.
    ``key_padding_mask`` (optional, ``(batch, T)`` bool, ``True`` = padding) hides padded keys
    too; a query whose keys are all hidden gets NaN weights, as with any softmax over nothing.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False
    ) -> None:
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))
        self.last_attn_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        num_tokens = x.shape[-2]
        _check_length(num_tokens, self.mask.shape[0])
        queries = self.W_query(x)
        keys = self.W_key(x)
        values = self.W_value(x)

        attn_scores = queries @ keys.transpose(-2, -1)
        future = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores = attn_scores.masked_fill(future, -torch.inf)
        if key_padding_mask is not None:
            attn_scores = attn_scores.masked_fill(key_padding_mask[:, None, :], -torch.inf)

        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        self.last_attn_weights = attn_weights.detach()
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values


class MultiHeadAttentionWrapper(nn.Module):
    """Multi-head attention the simple way: ``num_heads`` independent :class:`CausalAttention`
    heads run on the same input, their outputs concatenated along the last dimension::

        head_h  = CausalAttention_h(X)                     (T x d_out each)
        context = concat(head_1, ..., head_H)              (T x num_heads * d_out)

    Note that each head outputs ``d_out``, so the result is ``num_heads * d_out`` wide. Heads
    are computed one after another; :class:`MultiHeadAttention` does them in one batch.
    ``last_attn_weights`` stacks the heads' weights: ``(batch, num_heads, T, T)``.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([head(x, key_padding_mask) for head in self.heads], dim=-1)

    @property
    def last_attn_weights(self) -> torch.Tensor | None:
        weights = [head.last_attn_weights for head in self.heads]
        if any(w is None for w in weights):
            return None
        return torch.stack(weights, dim=-3)


class MultiHeadAttention(nn.Module):
    """Efficient multi-head attention: one projection each for Q, K, V, split into heads.

    With ``H = num_heads`` and ``head_dim = d_out / H``::

        Q = X W_q^T  -> view(b, T, H, head_dim).transpose(1, 2)   (b, H, T, head_dim); same for K, V
        scores_h  = Q_h K_h^T                                      (b, H, T, T)
        scores_h[i, j] = -inf  where j > i                         (if causal)
        weights_h = dropout(softmax(scores_h / sqrt(head_dim)))
        context_h = weights_h V_h                                  (b, H, T, head_dim)
        merged    = context.transpose(1, 2).view(b, T, d_out)      (heads side by side)
        output    = merged W_o^T + b_o                             (out_proj, with bias)

    Parameters are created in the order ``W_query``, ``W_key``, ``W_value``, ``out_proj``, like
    the notes. Unlike :class:`MultiHeadAttentionWrapper`, the output is ``d_out`` wide, and
    ``d_out`` must be divisible by ``num_heads``.

    ``causal`` (keyword only, default ``True``) turns the future mask off for encoder-style
    attention. ``key_padding_mask`` (optional, ``(b, T)`` bool, ``True`` = padding) hides padded
    keys. ``x`` is ``(b, T, d_in)``; ``last_attn_weights`` is ``(b, H, T, T)``.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
        *,
        causal: bool = True,
    ) -> None:
        super().__init__()
        if num_heads < 1 or d_out % num_heads != 0:
            raise AttnlabError(
                f"d_out ({d_out}) must be divisible by num_heads ({num_heads}); "
                "pick a head count that divides the width"
            )
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.causal = causal
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))
        self.last_attn_weights: torch.Tensor | None = None

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(b, T, d_out) -> (b, num_heads, T, head_dim)``."""
        b, num_tokens, _ = t.shape
        return t.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        _check_length(num_tokens, self.mask.shape[0])
        queries = self.split_heads(self.W_query(x))
        keys = self.split_heads(self.W_key(x))
        values = self.split_heads(self.W_value(x))

        attn_scores = queries @ keys.transpose(2, 3)
        if self.causal:
            future = self.mask.bool()[:num_tokens, :num_tokens]
            attn_scores = attn_scores.masked_fill(future, -torch.inf)
        if key_padding_mask is not None:
            attn_scores = attn_scores.masked_fill(key_padding_mask[:, None, None, :], -torch.inf)

        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        self.last_attn_weights = attn_weights.detach()
        attn_weights = self.dropout(attn_weights)

        context = (attn_weights @ values).transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)
