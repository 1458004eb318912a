"""A Transformer block, every variant the project needs in one readable class.

Pre-norm (GPT-2, the attention overview's block)::

    x = x + Dropout(Attention(Norm_1(x)))
    x = x + Dropout(FFN(Norm_2(x)))

Post-norm (Vaswani et al. 2017)::

    x = Norm_1(x + Dropout(Attention(x)))
    x = Norm_2(x + Dropout(FFN(x)))

A decoder block of an encoder-decoder adds cross-attention over the encoder output between the
two. The attention overview's ablations are switches: ``norm="none"``, ``residual=False`` (the sub-layer output
replaces x instead of being added), ``ffn=False`` (no feed-forward sub-layer).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.layers.attention import KVCache, MultiHeadAttention
from attnlab.layers.mlp import MLP, MLPS
from attnlab.layers.norm import make_norm
from attnlab.layers.position import ABSOLUTE_POSITIONS

NORM_POSITIONS = ("post", "pre")


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, *, d_ff: int | None = None, dropout: float = 0.0,
                 bias: bool = True, causal: bool = True, cross_attention: bool = False,
                 norm: str = "layernorm", norm_position: str = "pre", residual: bool = True, ffn: bool = True,
                 mlp: str = "gelu", qk_norm: bool = False, attn_dropout: float | None = None) -> None:
        """``dropout`` drops sublayer outputs; ``attn_dropout`` the attention weights (None: ``dropout``)."""
        super().__init__()
        if norm_position not in ("pre", "post"):
            raise ValueError(f"norm_position must be 'pre' or 'post', got {norm_position!r}")
        self.pre = norm_position == "pre"
        self.residual = residual
        self.norm1 = make_norm(norm, d_model, bias=bias)
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.attn = MultiHeadAttention(d_model, n_head, dropout=attn_dropout, bias=bias, causal=causal,
                                       qk_norm=qk_norm)
        self.cross_attn = None
        if cross_attention:
            self.norm_cross = make_norm(norm, d_model, bias=bias)
            self.cross_attn = MultiHeadAttention(d_model, n_head, dropout=attn_dropout, bias=bias, cross=True,
                                                 qk_norm=qk_norm)
        self.mlp = None
        if ffn:
            self.norm2 = make_norm(norm, d_model, bias=bias)
            self.mlp = MLP(d_model, d_ff, kind=mlp, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def _sublayer(self, x: Tensor, norm: nn.Module, fn) -> tuple[Tensor, Tensor | None]:
        out, weights = fn(norm(x) if self.pre else x)
        if self.training and self.dropout.p > 0:  # skipped, not called, when off: decoding is call-bound
            out = self.dropout(out)
        x = x + out if self.residual else out
        return (x if self.pre else norm(x)), weights

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None, context: Tensor | None = None,
                context_mask: Tensor | None = None, cache: KVCache | None = None,
                cross_cache: KVCache | None = None, rope: nn.Module | None = None,
                need_weights: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """Returns the new ``x`` and, when ``need_weights``, ``{"self": (B,H,T,T), "cross": (B,H,T,S)}``."""
        weights: dict[str, Tensor] = {}
        x, w = self._sublayer(x, self.norm1, lambda h: self.attn(
            h, key_padding_mask=key_padding_mask, cache=cache, rope=rope, need_weights=need_weights))
        if w is not None:
            weights["self"] = w
        if self.cross_attn is not None:
            x, w = self._sublayer(x, self.norm_cross, lambda h: self.cross_attn(
                h, context=context, key_padding_mask=context_mask, cache=cross_cache, need_weights=need_weights))
            if w is not None:
                weights["cross"] = w
        if self.mlp is not None:
            x, _ = self._sublayer(x, self.norm2, lambda h: (self.mlp(h), None))
        return x, weights


def check_block_settings(owner: str, c: Any) -> None:
    """The checks a config of :class:`Block` layers needs: ``n_embd``, ``n_head``, ``pos`` (absolute),
    ``norm_position``, ``mlp`` and ``dropout``; a bad value is an :class:`AttnlabError` naming ``owner``."""
    if c.n_embd % c.n_head:
        raise AttnlabError(f"{owner}: n_embd {c.n_embd} must be divisible by n_head {c.n_head}")
    if c.pos not in ABSOLUTE_POSITIONS:
        raise AttnlabError(f"{owner}.pos must be one of {', '.join(ABSOLUTE_POSITIONS)}, got {c.pos!r}")
    if c.norm_position not in NORM_POSITIONS:
        raise AttnlabError(f"{owner}.norm_position must be 'post' or 'pre', got {c.norm_position!r}")
    if c.mlp not in MLPS:
        raise AttnlabError(f"{owner}.mlp must be one of {', '.join(MLPS)}, got {c.mlp!r}")
    if not 0.0 <= c.dropout < 1.0:
        raise AttnlabError(f"{owner}.dropout must be in [0, 1), got {c.dropout}")
