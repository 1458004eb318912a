"""A Transformer block, every variant the project needs in one readable class.

Pre-norm (GPT-2, the seed's block)::

    x = x + Dropout(Attention(Norm_1(x)))
    x = x + Dropout(FFN(Norm_2(x)))

Post-norm (Vaswani et al. 2017)::

    x = Norm_1(x + Dropout(Attention(x)))
    x = Norm_2(x + Dropout(FFN(x)))

A decoder block of an encoder-decoder adds cross-attention over the encoder output between the
two. The seed's ablations are switches: ``norm="none"``, ``residual=False`` (the sub-layer output
replaces x instead of being added), ``ffn=False`` (no feed-forward sub-layer).
"""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.layers.attention import KVCache, MultiHeadAttention
from attnlab.layers.mlp import MLP
from attnlab.layers.norm import make_norm


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, *, d_ff: int | None = None, dropout: float = 0.0,
                 bias: bool = True, causal: bool = True, cross_attention: bool = False,
                 norm: str = "layernorm", norm_position: str = "pre", residual: bool = True, ffn: bool = True,
                 mlp: str = "gelu", qk_norm: bool = False) -> None:
        super().__init__()
        if norm_position not in ("pre", "post"):
            raise ValueError(f"norm_position must be 'pre' or 'post', got {norm_position!r}")
        self.pre = norm_position == "pre"
        self.residual = residual
        self.norm1 = make_norm(norm, d_model, bias=bias)
        self.attn = MultiHeadAttention(d_model, n_head, dropout=dropout, bias=bias, causal=causal, qk_norm=qk_norm)
        self.cross_attn = None
        if cross_attention:
            self.norm_cross = make_norm(norm, d_model, bias=bias)
            self.cross_attn = MultiHeadAttention(d_model, n_head, dropout=dropout, bias=bias, cross=True,
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
