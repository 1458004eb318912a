"""The Transformer (Vaswani et al. 2017): an encoder-decoder made of attention alone.

    x_0 = E_src[src] * sqrt(d) + PE[0..S)                    embeddings scaled, positions added
    x_l = EncoderBlock_l(x_{l-1})       l = 1..N             self-attention (padding masked) + FFN
    y_0 = E_tgt[tgt_in] * sqrt(d) + PE[0..T)                 tgt_in = <bos> y_1 .. y_{T-1}
    y_l = DecoderBlock_l(y_{l-1}, x_N)  l = 1..N             causal self-attention, cross-attention
                                                             over x_N, FFN
    P(y_t | y_<t, x) = softmax(y_N W_out)                    W_out = E_tgt^T when tied

``d`` is the width ``n_embd`` (the paper's d_model). Each sub-layer is
``x = LayerNorm(x + Dropout(Sublayer(x)))`` (post-norm, as in the paper) or
``x = x + Dropout(Sublayer(LayerNorm(x)))`` with a final LayerNorm (pre-norm, ``norm_position="pre"``).
``PE`` is the paper's sinusoid ``PE[pos, 2i] = sin(pos / 10000^(2i/d))``, ``PE[pos, 2i+1] = cos(...)``,
or a learned table (``pos="learned"``). With one shared vocabulary (``share_embeddings``) the source
embedding, the target embedding and the output projection are one matrix, as in the paper.

Training minimises label-smoothed cross-entropy over the real target tokens
(:func:`attnlab.layers.loss.masked_cross_entropy`)::

    q(k) = (1 - eps) [k = y_t] + eps / V,     loss = - sum_k q(k) log P(k | y_<t, x)

(the validation loss, computed in eval mode, is the plain negative log-likelihood per token).
The paper's learning rate ``d^-0.5 min(s^-0.5, s W^-1.5)`` is the trainer's ``inverse_sqrt`` schedule.

Decoding (greedy or beam search, :func:`attnlab.inference.search.decode`) calls
:meth:`Transformer.start_decoding` once and :meth:`Transformer.step` per token. Each step feeds one
token: the decoder self-attention keeps its keys/values in a :class:`~attnlab.layers.attention.KVCache`,
and the cross-attention keys/values ``x_N W_K, x_N W_V`` are computed once per sentence (static
caches), so a step costs O(t) instead of O(t^2) work.
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
from attnlab.layers.attention import KVCache
from attnlab.layers.block import Block, check_block_settings
from attnlab.layers.init import xavier_init
from attnlab.layers.loss import masked_cross_entropy
from attnlab.layers.norm import make_norm
from attnlab.layers.position import absolute_positions

# =========================================================================================== config


@dataclass
class TransformerConfig:
    """Shape of the encoder-decoder. Defaults are the paper's base model (~63M parameters with a
    37,000-token shared vocabulary; the paper reports 65M).

    Field names follow every attnlab config: the width is ``n_embd`` (the paper's d_model) and the
    longest sequence ``context_length``; runs saved with ``d_model`` / ``max_length`` still load.
    """

    renamed_fields: ClassVar[dict[str, str | None]] = {"d_model": "n_embd", "max_length": "context_length"}

    src_vocab_size: int = 37000
    tgt_vocab_size: int = 37000
    n_embd: int = 512
    n_head: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    context_length: int = 256  # longest source or target sentence (tokens) the positions cover
    pos: str = "sinusoidal"  # sinusoidal | learned
    norm_position: str = "post"  # post (the paper) | pre
    mlp: str = "relu"  # the paper's FFN: max(0, x W_1 + b_1) W_2 + b_2
    share_embeddings: bool = False  # one embedding for source and target (needs one shared vocabulary)
    tie_output: bool = True  # output projection = target embedding
    label_smoothing: float = 0.1
    bias: bool = True
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    max_target_len: int = 64  # default length limit when decoding

    def __post_init__(self) -> None:
        require_positive_fields(
            self,
            (
                "src_vocab_size",
                "tgt_vocab_size",
                "n_embd",
                "n_head",
                "n_encoder_layers",
                "n_decoder_layers",
                "d_ff",
                "context_length",
                "max_target_len",
            ),
        )
        check_block_settings("TransformerConfig", self)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise AttnlabError(
                f"TransformerConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise AttnlabError(
                "TransformerConfig.share_embeddings needs one shared vocabulary, but src_vocab_size "
                f"{self.src_vocab_size} != tgt_vocab_size {self.tgt_vocab_size}"
            )
        specials = (self.pad_id, self.bos_id, self.eos_id)
        if len(set(specials)) != 3 or min(specials) < 0 or max(specials) >= self.tgt_vocab_size:
            raise AttnlabError(
                f"TransformerConfig: pad/bos/eos ids {specials} must be distinct ids of the "
                f"target vocabulary (0..{self.tgt_vocab_size - 1})"
            )


PRESETS: dict[str, dict[str, Any]] = {
    # tests: learns copy / reverse in seconds
    "tiny": dict(
        n_embd=64,
        n_head=4,
        n_encoder_layers=2,
        n_decoder_layers=2,
        d_ff=128,
        dropout=0.0,
        label_smoothing=0.0,
    ),
    # `attnlab train transformer --task dates-fr-en`: minutes on a CPU
    "small": dict(n_embd=128, n_head=4, n_encoder_layers=3, n_decoder_layers=3, d_ff=512, dropout=0.1),
    # the paper's base model
    "base": dict(n_embd=512, n_head=8, n_encoder_layers=6, n_decoder_layers=6, d_ff=2048, dropout=0.1),
}


def preset_config(name: str, **overrides: Any) -> TransformerConfig:
    return config_from_preset(TransformerConfig, PRESETS, name, "transformer", overrides)


# =========================================================================================== model


class Transformer(Savable, nn.Module):
    """The encoder-decoder of "Attention Is All You Need"; see the module docstring."""

    model_type: ClassVar[str] = "transformer"
    config_class: ClassVar[type] = TransformerConfig
    attends: ClassVar[bool] = True  # each step's state holds the cross-attention "attn" (for alignments)

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.src_embed = nn.Embedding(c.src_vocab_size, c.n_embd)
        self.tgt_embed = self.src_embed if c.share_embeddings else nn.Embedding(c.tgt_vocab_size, c.n_embd)
        self.src_pos = absolute_positions(c.pos, c.context_length, c.n_embd)
        self.tgt_pos = (self.src_pos if c.pos == "sinusoidal"
                        else absolute_positions(c.pos, c.context_length, c.n_embd))
        self.drop = nn.Dropout(c.dropout)
        layer = dict(d_ff=c.d_ff, dropout=c.dropout, bias=c.bias, norm_position=c.norm_position, mlp=c.mlp)
        self.encoder = nn.ModuleList(
            Block(c.n_embd, c.n_head, causal=False, **layer) for _ in range(c.n_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            Block(c.n_embd, c.n_head, causal=True, cross_attention=True, **layer)
            for _ in range(c.n_decoder_layers)
        )
        pre = c.norm_position == "pre"  # pre-norm leaves the residual stream unnormalised: close it
        self.encoder_norm = make_norm("layernorm", c.n_embd, bias=c.bias) if pre else nn.Identity()
        self.decoder_norm = make_norm("layernorm", c.n_embd, bias=c.bias) if pre else nn.Identity()
        self.out = nn.Linear(c.n_embd, c.tgt_vocab_size, bias=False)
        xavier_init(self, c.n_embd)
        if c.tie_output:
            self.out.weight = self.tgt_embed.weight

    def parameter_count(self) -> int:
        """Distinct parameters (shared embeddings count once)."""
        return sum(p.numel() for p in self.parameters())

    # ---- the two stacks ----------------------------------------------------------------------
    def _embed(self, ids: Tensor, table: nn.Embedding, pos: nn.Module, offset: int = 0) -> Tensor:
        length = ids.shape[1]
        if offset + length > self.config.context_length:
            raise AttnlabError(
                f"a sequence of {offset + length} tokens is longer than this model's context_length "
                f"{self.config.context_length}; shorten it or train with --set context_length=N"
            )
        return self.drop(table(ids) * math.sqrt(self.config.n_embd) + pos(length, offset))

    def encode(
        self, src: Tensor, src_mask: Tensor, need_weights: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``src`` (B, S) ids, ``src_mask`` (B, S) true at real tokens -> memory (B, S, n_embd)."""
        src_mask = src_mask.bool()
        if bool((~src_mask.any(dim=1)).any()):
            raise AttnlabError("a source sentence is empty; every source needs at least one token")
        x = self._embed(src, self.src_embed, self.src_pos)
        maps = []
        for block in self.encoder:
            x, weights = block(x, key_padding_mask=src_mask, need_weights=need_weights)
            if need_weights:
                maps.append(weights["self"])
        x = self.encoder_norm(x)
        return (x, maps) if need_weights else x

    def _decoder(
        self,
        tgt_in: Tensor,
        memory: Tensor,
        src_mask: Tensor,
        *,
        caches: list[KVCache] | None = None,
        cross_caches: list[KVCache] | None = None,
        offset: int = 0,
        need_weights: bool | str = False,
    ) -> tuple[Tensor, dict[str, list[Tensor]]]:
        """Decoder stack -> (features (B, T, n_embd), weights).

        ``need_weights="last"``: the weights of the last layer only."""
        y = self._embed(tgt_in, self.tgt_embed, self.tgt_pos, offset)
        maps: dict[str, list[Tensor]] = {"self": [], "cross": []}
        last = len(self.decoder) - 1
        for i, block in enumerate(self.decoder):
            want = need_weights is True or (need_weights == "last" and i == last)
            y, weights = block(
                y,
                context=memory,
                context_mask=src_mask,
                cache=caches[i] if caches else None,
                cross_cache=cross_caches[i] if cross_caches else None,
                need_weights=want,
            )
            for key in ("self", "cross"):
                if key in weights:
                    maps[key].append(weights[key])
        return self.decoder_norm(y), maps

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Logits (B, T, tgt_vocab) for the next target token at every position of ``tgt_in``
        (``<bos>`` + target; teacher forcing)."""
        memory = self.encode(src, src_mask)
        features, _ = self._decoder(tgt_in, memory, src_mask.bool())
        return self.out(features)

    def loss(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, tgt_out: Tensor, tgt_mask: Tensor
    ) -> Tensor:
        """Mean (label-smoothed, in training mode) cross-entropy over the real target tokens."""
        smoothing = self.config.label_smoothing if self.training else 0.0
        return masked_cross_entropy(self(src, src_mask, tgt_in), tgt_out, tgt_mask, smoothing)

    @torch.no_grad()
    def attention_maps(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> dict[str, list[Tensor]]:
        """Every attention weight of a teacher-forced pass, per layer and head.

        Returns ``{"encoder": [(B, H, S, S)] * n_encoder_layers, "decoder": [(B, H, T, T)] * n_decoder_layers,
        "cross": [(B, H, T, S)] * n_decoder_layers}``; rows are queries, columns keys, each row sums to 1
        (padding keys get 0). ``tgt_in`` is ``<bos>`` + target, the decoder's inputs.
        """
        was_training = self.training
        self.eval()
        try:
            src_mask = src_mask.bool()
            memory, encoder_maps = self.encode(src, src_mask, need_weights=True)
            _, maps = self._decoder(tgt_in, memory, src_mask, need_weights=True)
        finally:
            self.train(was_training)
        return {"encoder": encoder_maps, "decoder": maps["self"], "cross": maps["cross"]}

    # ---- decoding: the search protocol of attnlab.inference.search --------------------------
    def start_decoding(self, src: Tensor, src_mask: Tensor, use_cache: bool = True) -> dict[str, Any]:
        """The search state after encoding: a dict of (N, ...) tensors plus the decoded length.

        With ``use_cache`` the state gains, after the first step, ``self_k/self_v`` (per layer,
        (N, H, capacity, d_head) buffers of which the first ``length`` positions are filled) and
        ``cross_k/cross_v`` (per layer, (N, H, S, d_head), computed once). Without it, ``prefix``
        (N, t) holds the tokens fed so far and
        every step reruns the decoder over all of them (the reference the cache is tested against).
        """
        src_mask = src_mask.bool()
        memory = self.encode(src, src_mask)
        state: dict[str, Any] = {
            "memory": memory,
            "src_mask": src_mask,
            "length": 0,
            "attn": memory.new_zeros(src_mask.shape),
        }
        if not use_cache:
            state["prefix"] = src.new_zeros((src.shape[0], 0))
        return state

    def step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """The search step: last tokens (N,) -> log P(next token) (N, V) and the new state.

        ``attn`` in the new state is the last decoder layer's cross-attention for this step, averaged
        over heads (N, S). The state's cache buffers are written in place: use each state once.
        """
        if "prefix" in state:
            return self._step_uncached(tokens, state)
        length, n = state["length"], len(self.decoder)
        caches, cross_caches = [KVCache() for _ in range(n)], [KVCache() for _ in range(n)]
        if length:
            for i in range(n):
                caches[i].k, caches[i].v, caches[i].length = state["self_k"][i], state["self_v"][i], length
                cross_caches[i].set_static(state["cross_k"][i], state["cross_v"][i])
        features, maps = self._decoder(
            tokens.unsqueeze(1),
            state["memory"],
            state["src_mask"],
            caches=caches,
            cross_caches=cross_caches,
            offset=length,
            need_weights="last",
        )
        new = dict(state, length=length + 1, attn=maps["cross"][-1][:, :, 0].mean(1))
        new["self_k"], new["self_v"] = [c.k for c in caches], [c.v for c in caches]
        new["cross_k"], new["cross_v"] = [c.k for c in cross_caches], [c.v for c in cross_caches]
        return F.log_softmax(self.out(features[:, 0]).float(), dim=-1), new

    def _step_uncached(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        prefix = torch.cat([state["prefix"], tokens.unsqueeze(1)], dim=1)
        features, maps = self._decoder(prefix, state["memory"], state["src_mask"], need_weights="last")
        new = dict(state, prefix=prefix, length=prefix.shape[1], attn=maps["cross"][-1][:, :, -1].mean(1))
        return F.log_softmax(self.out(features[:, -1]).float(), dim=-1), new

    # ---- persistence ---------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Transformer:
        return cls(preset_config(name, **overrides))

    def with_config(self, **changes: Any) -> TransformerConfig:
        return dataclasses.replace(self.config, **changes)

