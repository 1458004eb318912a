"""The Transformer (Vaswani et al. 2017): an encoder-decoder made of attention alone, and its
encoder-only sibling (BERT, Devlin et al. 2018) trained to fill in masked tokens.

**Encoder-decoder** (:class:`Transformer`)::

    x_0 = E_src[src] * sqrt(d_model) + PE[0..S)              embeddings scaled, positions added
    x_l = EncoderBlock_l(x_{l-1})       l = 1..N             self-attention (padding masked) + FFN
    y_0 = E_tgt[tgt_in] * sqrt(d_model) + PE[0..T)           tgt_in = <bos> y_1 .. y_{T-1}
    y_l = DecoderBlock_l(y_{l-1}, x_N)  l = 1..N             causal self-attention, cross-attention
                                                             over x_N, FFN
    P(y_t | y_<t, x) = softmax(y_N W_out)                    W_out = E_tgt^T when tied

Each sub-layer is ``x = LayerNorm(x + Dropout(Sublayer(x)))`` (post-norm, as in the paper) or
``x = x + Dropout(Sublayer(LayerNorm(x)))`` with a final LayerNorm (pre-norm, ``norm_position="pre"``).
``PE`` is the paper's sinusoid ``PE[pos, 2i] = sin(pos / 10000^(2i/d))``, ``PE[pos, 2i+1] = cos(...)``,
or a learned table (``pos="learned"``). With one shared vocabulary (``share_embeddings``) the source
embedding, the target embedding and the output projection are one matrix, as in the paper.

Training minimises label-smoothed cross-entropy over the real target tokens::

    q(k) = (1 - eps) [k = y_t] + eps / V,     loss = - sum_k q(k) log P(k | y_<t, x)

(the validation loss, computed in eval mode, is the plain negative log-likelihood per token).
The paper's learning rate ``d^-0.5 min(s^-0.5, s W^-1.5)`` is the trainer's ``inverse_sqrt`` schedule.

Decoding (:meth:`Transformer.decode`) is greedy or beam search from :mod:`attnlab.inference.search`.
Each step feeds one token: the decoder self-attention keeps its keys/values in a
:class:`~attnlab.layers.attention.KVCache`, and the cross-attention keys/values ``x_N W_K, x_N W_V`` are
computed once per sentence (static caches), so a step costs O(t) instead of O(t^2) work.

**Encoder only** (:class:`EncoderLM`): the encoder stack over one text, no causal mask. 15% of the
positions are chosen; 80% of those become ``[MASK]``, 10% a random token, 10% stay; the model is
trained to predict the original token at the chosen positions only (the masked-LM objective).
``attnlab fill RUN "Friends, [MASK], countrymen"`` prints its best guesses (:func:`fill_masks`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.checkpoint import Savable, config_from_preset
from attnlab.errors import AttnlabError, require_positive_fields
from attnlab.inference.search import DecodeResult, beam_search, greedy_decode
from attnlab.layers.attention import KVCache
from attnlab.layers.block import Block
from attnlab.layers.mlp import MLPS
from attnlab.layers.norm import make_norm
from attnlab.layers.position import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from attnlab.models.seq2seq import (
    DATA_SEED,
    SRC_TOKENIZER_FILE,
    TGT_TOKENIZER_FILE,
    TranslationObjective,
    Translator,
)

POSITIONS = ("sinusoidal", "learned")
NORM_POSITIONS = ("post", "pre")
MASK = "[MASK]"


def _check_common(owner: str, c: Any) -> None:
    if c.d_model % c.n_head:
        raise AttnlabError(f"{owner}: d_model {c.d_model} must be divisible by n_head {c.n_head}")
    if c.pos not in POSITIONS:
        raise AttnlabError(f"{owner}.pos must be one of {', '.join(POSITIONS)}, got {c.pos!r}")
    if c.norm_position not in NORM_POSITIONS:
        raise AttnlabError(f"{owner}.norm_position must be 'post' or 'pre', got {c.norm_position!r}")
    if c.mlp not in MLPS:
        raise AttnlabError(f"{owner}.mlp must be one of {', '.join(MLPS)}, got {c.mlp!r}")
    if not 0.0 <= c.dropout < 1.0:
        raise AttnlabError(f"{owner}.dropout must be in [0, 1), got {c.dropout}")


def _init_weights(model: nn.Module, d_model: int) -> None:
    """Xavier-uniform matrices, zero biases, embeddings N(0, d^-1/2) (so ``E * sqrt(d)`` has unit scale)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=d_model**-0.5)


def _positions(kind: str, max_length: int, d_model: int) -> nn.Module:
    if kind == "learned":
        return LearnedPositionalEmbedding(max_length, d_model)
    return SinusoidalPositionalEncoding(max_length, d_model)


# =========================================================================================== config


@dataclass
class TransformerConfig:
    """Shape of the encoder-decoder. Defaults are the paper's base model (~63M parameters with a
    37,000-token shared vocabulary; the paper reports 65M)."""

    src_vocab_size: int = 37000
    tgt_vocab_size: int = 37000
    d_model: int = 512
    n_head: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    max_length: int = 256  # longest source or target sentence (tokens) the positions cover
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
                "d_model",
                "n_head",
                "n_encoder_layers",
                "n_decoder_layers",
                "d_ff",
                "max_length",
                "max_target_len",
            ),
        )
        _check_common("TransformerConfig", self)
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
        d_model=64,
        n_head=4,
        n_encoder_layers=2,
        n_decoder_layers=2,
        d_ff=128,
        dropout=0.0,
        label_smoothing=0.0,
    ),
    # `attnlab train transformer --task dates-fr-en`: minutes on a CPU
    "small": dict(d_model=128, n_head=4, n_encoder_layers=3, n_decoder_layers=3, d_ff=512, dropout=0.1),
    # the paper's base model
    "base": dict(d_model=512, n_head=8, n_encoder_layers=6, n_decoder_layers=6, d_ff=2048, dropout=0.1),
}


def preset_config(name: str, **overrides: Any) -> TransformerConfig:
    return config_from_preset(TransformerConfig, PRESETS, name, "transformer", overrides)


# =========================================================================================== model


class Transformer(Savable, nn.Module):
    """The encoder-decoder of "Attention Is All You Need"; see the module docstring."""

    model_type: ClassVar[str] = "transformer"
    config_class: ClassVar[type] = TransformerConfig
    attends: ClassVar[bool] = True  # decode() records cross-attention (for alignments)

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embed = self.src_embed if c.share_embeddings else nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.src_pos = _positions(c.pos, c.max_length, c.d_model)
        self.tgt_pos = self.src_pos if c.pos == "sinusoidal" else _positions(c.pos, c.max_length, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        layer = dict(d_ff=c.d_ff, dropout=c.dropout, bias=c.bias, norm_position=c.norm_position, mlp=c.mlp)
        self.encoder = nn.ModuleList(
            Block(c.d_model, c.n_head, causal=False, **layer) for _ in range(c.n_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            Block(c.d_model, c.n_head, causal=True, cross_attention=True, **layer)
            for _ in range(c.n_decoder_layers)
        )
        pre = c.norm_position == "pre"  # pre-norm leaves the residual stream unnormalised: close it
        self.encoder_norm = make_norm("layernorm", c.d_model, bias=c.bias) if pre else nn.Identity()
        self.decoder_norm = make_norm("layernorm", c.d_model, bias=c.bias) if pre else nn.Identity()
        self.out = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        _init_weights(self, c.d_model)
        if c.tie_output:
            self.out.weight = self.tgt_embed.weight

    def parameter_count(self) -> int:
        """Distinct parameters (shared embeddings count once)."""
        return sum(p.numel() for p in self.parameters())

    # ---- the two stacks ----------------------------------------------------------------------
    def _embed(self, ids: Tensor, table: nn.Embedding, pos: nn.Module, offset: int = 0) -> Tensor:
        length = ids.shape[1]
        if offset + length > self.config.max_length:
            raise AttnlabError(
                f"a sequence of {offset + length} tokens is longer than this model's max_length "
                f"{self.config.max_length}; shorten it or train with --set max_length=N"
            )
        return self.drop(table(ids) * math.sqrt(self.config.d_model) + pos(length, offset))

    def encode(
        self, src: Tensor, src_mask: Tensor, need_weights: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``src`` (B, S) ids, ``src_mask`` (B, S) true at real tokens -> memory (B, S, d_model)."""
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
        """Decoder stack -> (features (B, T, d_model), weights).

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
        return smoothed_cross_entropy(self(src, src_mask, tgt_in), tgt_out, tgt_mask, smoothing)

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

    # ---- decoding ----------------------------------------------------------------------------
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

    @torch.no_grad()
    def decode(
        self,
        src: Tensor,
        src_mask: Tensor,
        beam: int = 1,
        max_len: int | None = None,
        length_penalty: float = 1.0,
        use_cache: bool = True,
    ) -> DecodeResult:
        """Translate a batch: greedy (``beam=1``) or beam search; ``recorded`` holds the last layer's
        head-averaged cross-attention (B, T, S)."""
        c = self.config
        max_len = min(max_len or c.max_target_len, c.max_length)
        was_training = self.training
        self.eval()
        try:
            state = self.start_decoding(src, src_mask, use_cache=use_cache)
            if beam == 1:
                return greedy_decode(
                    self.step, state, c.bos_id, c.eos_id, max_len, src.shape[0], record="attn"
                )
            return beam_search(
                self.step,
                state,
                c.bos_id,
                c.eos_id,
                max_len,
                beam,
                length_penalty,
                batch_size=src.shape[0],
                record="attn",
            )
        finally:
            self.train(was_training)

    # ---- persistence ---------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Transformer:
        return cls(preset_config(name, **overrides))

    def with_config(self, **changes: Any) -> TransformerConfig:
        return dataclasses.replace(self.config, **changes)


def smoothed_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor, smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy against ``(1 - eps) one_hot + eps / V`` over positions where ``mask`` is true."""
    flat = logits.float().reshape(-1, logits.size(-1))
    losses = F.cross_entropy(flat, targets.reshape(-1), reduction="none", label_smoothing=smoothing)
    weight = mask.reshape(-1).to(losses.dtype)
    return (losses * weight).sum() / weight.sum().clamp(min=1.0)


# =========================================================================================== text helpers


def attention_maps_for_text(translator: Any, source: str, target: str | None = None) -> dict[str, Any]:
    """Encoder self-, decoder self- and cross-attention for one sentence pair, ready to draw.

    ``translator``: anything with ``model`` (a :class:`Transformer`), ``src_tokenizer`` and
    ``tgt_tokenizer`` (e.g. :class:`attnlab.models.seq2seq.Translator`). ``target=None``: the model's
    own greedy translation. Returns ``src_tokens`` (S), ``tgt_tokens`` (T: ``<bos>`` + target, the
    decoder's inputs, i.e. the query rows), ``target`` (text) and the lists of per-layer (H, ., .)
    tensors ``encoder`` (S x S), ``decoder`` (T x T) and ``cross`` (T x S).
    """
    model = translator.model
    if not isinstance(model, Transformer):
        raise AttnlabError(
            f"attention maps per layer and head need a transformer run, not {model.model_type!r}"
        )
    src, mask, ids = translator.encode_sources([source])
    if target is None:
        (row,) = model.decode(src, mask).sequences()
        target = translator.tgt_tokenizer.decode(row)
    else:
        row = translator.tgt_tokenizer.encode(target, unknown="unk")
    tgt_in = torch.tensor([[model.config.bos_id, *row]], dtype=torch.long, device=src.device)
    maps = model.attention_maps(src, mask, tgt_in)
    return {
        "src_tokens": translator.src_tokenizer.tokens(ids[0]),
        "tgt_tokens": translator.tgt_tokenizer.tokens([model.config.bos_id, *row]),
        "target": target,
        **{key: [m[0].cpu() for m in value] for key, value in maps.items()},
    }


# =========================================================================================== encoder only


@dataclass
class EncoderConfig:
    """An encoder-only Transformer language model (BERT-like), trained to fill in masked tokens."""

    vocab_size: int = 30522
    context_length: int = 128
    d_model: int = 128
    n_head: int = 4
    n_layer: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    pos: str = "learned"  # learned (BERT) | sinusoidal
    norm_position: str = "post"  # post (BERT) | pre
    mlp: str = "gelu"
    bias: bool = True
    mask_id: int = 2  # id of [MASK] in the vocabulary
    mask_prob: float = 0.15  # share of positions chosen for prediction

    def __post_init__(self) -> None:
        require_positive_fields(self, ("vocab_size", "context_length", "d_model", "n_head", "n_layer", "d_ff"))
        _check_common("EncoderConfig", self)
        if not 0 <= self.mask_id < self.vocab_size:
            raise AttnlabError(
                f"EncoderConfig.mask_id {self.mask_id} is not an id of the vocabulary "
                f"(0..{self.vocab_size - 1})"
            )
        if not 0.0 < self.mask_prob < 1.0:
            raise AttnlabError(f"EncoderConfig.mask_prob must be in (0, 1), got {self.mask_prob}")


ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(context_length=32, d_model=32, n_head=2, n_layer=2, d_ff=64, dropout=0.0),
    "small": dict(context_length=64, d_model=128, n_head=4, n_layer=4, d_ff=512, dropout=0.1),
    "base": dict(context_length=512, d_model=768, n_head=12, n_layer=12, d_ff=3072, dropout=0.1),  # BERT-base
}


class EncoderLM(Savable, nn.Module):
    """Bidirectional self-attention over one text; predicts the tokens hidden behind ``[MASK]``.

    ``logits = LayerNorm(gelu(h_N W_t)) E^T + b``: BERT's prediction head, tied to the token embedding.
    """

    model_type: ClassVar[str] = "encoder"
    config_class: ClassVar[type] = EncoderConfig

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = _positions(c.pos, c.context_length, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(
                c.d_model,
                c.n_head,
                d_ff=c.d_ff,
                dropout=c.dropout,
                bias=c.bias,
                causal=False,
                norm_position=c.norm_position,
                mlp=c.mlp,
            )
            for _ in range(c.n_layer)
        )
        self.norm_f = (
            make_norm("layernorm", c.d_model, bias=c.bias) if c.norm_position == "pre" else nn.Identity()
        )
        self.transform = nn.Linear(c.d_model, c.d_model, bias=c.bias)
        self.transform_norm = make_norm("layernorm", c.d_model, bias=c.bias)
        self.out = nn.Linear(c.d_model, c.vocab_size, bias=True)
        _init_weights(self, c.d_model)
        nn.init.zeros_(self.out.bias)
        self.out.weight = self.tok_emb.weight

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, idx: Tensor, key_padding_mask: Tensor | None = None, need_weights: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``idx`` (B, T) -> logits (B, T, vocab); with ``need_weights`` also [(B, H, T, T)] per layer."""
        t = idx.shape[1]
        if t > self.config.context_length:
            raise AttnlabError(
                f"{t} tokens is longer than this model's context of {self.config.context_length}"
            )
        x = self.drop(self.tok_emb(idx) * math.sqrt(self.config.d_model) + self.pos_emb(t))
        maps = []
        for block in self.blocks:
            x, weights = block(x, key_padding_mask=key_padding_mask, need_weights=need_weights)
            if need_weights:
                maps.append(weights["self"])
        h = self.transform_norm(F.gelu(self.transform(self.norm_f(x))))
        logits = self.out(h)
        return (logits, maps) if need_weights else logits

    def loss(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy at the chosen positions (targets of -1 are ignored)."""
        logits = self(inputs)
        return F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
        )

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> list[Tensor]:
        was_training = self.training
        self.eval()
        try:
            _, maps = self(idx, need_weights=True)
        finally:
            self.train(was_training)
        return maps

def mask_tokens(
    ids: Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    mask_prob: float,
    generator: torch.Generator,
    protected: Sequence[int] = (),
) -> tuple[Tensor, Tensor]:
    """BERT's corruption: choose ``mask_prob`` of the positions (at least one per row, never a
    ``protected`` id); of those 80% -> ``[MASK]``, 10% -> a random token, 10% unchanged.
    Returns ``(inputs, targets)``; targets are -1 where nothing is predicted."""
    draw = torch.rand(ids.shape, generator=generator)
    allowed = torch.ones_like(ids, dtype=torch.bool)
    for special in protected:
        allowed &= ids != special
    draw = draw.masked_fill(~allowed, 2.0)
    chosen = (draw < mask_prob) & allowed
    first = draw.argmin(dim=1, keepdim=True)  # every row predicts at least one token
    chosen.scatter_(1, first, chosen.gather(1, first) | allowed.gather(1, first))
    action = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator)
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    targets = torch.where(chosen, ids, torch.full_like(ids, -1))
    return inputs, targets


class MaskedLMObjective:
    """Masked-token prediction on random windows of the train / validation token streams."""

    def __init__(
        self,
        train_ids: Tensor,
        val_ids: Tensor,
        config: EncoderConfig,
        seed: int = 0,
        protected: Sequence[int] = (),
    ) -> None:
        self.data = {"train": train_ids.long(), "val": val_ids.long()}
        self.config, self.seed, self.protected = config, seed, tuple(protected)
        t = config.context_length
        for split, ids in self.data.items():
            if len(ids) < t + 1:
                raise AttnlabError(
                    f"the {split} split has {len(ids)} tokens, fewer than one context of {t}: "
                    "use a longer text or --set context_length=N"
                )

    def batch(self, split: str, step: int, batch_size: int) -> dict[str, Tensor]:
        from attnlab.data.batching import batch_generator

        ids, t, c = self.data[split], self.config.context_length, self.config
        generator = batch_generator(self.seed, split, step)
        starts = torch.randint(len(ids) - t + 1, (batch_size,), generator=generator)
        windows = ids[starts.unsqueeze(1) + torch.arange(t).unsqueeze(0)]
        inputs, targets = mask_tokens(
            windows,
            mask_id=c.mask_id,
            vocab_size=c.vocab_size,
            mask_prob=c.mask_prob,
            generator=generator,
            protected=self.protected,
        )
        return {"inputs": inputs, "targets": targets}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["inputs"])
        return F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), batch["targets"].reshape(-1), ignore_index=-1
        )

    def count_tokens(self, batch: dict[str, Tensor]) -> int:
        return batch["inputs"].numel()


def encode_with_masks(tokenizer: Any, text: str) -> tuple[list[int], list[int]]:
    """Token ids of ``text`` with every ``[MASK]`` as the mask id; returns (ids, mask positions).

    Word tokens carry the space before them, so the space before a ``[MASK]`` belongs to the
    hidden word and is dropped from the text around it.
    """
    mask_id = tokenizer._special_id(MASK)
    if mask_id is None:
        raise AttnlabError("this run's tokenizer has no [MASK] token; train it with 'attnlab train encoder'")
    pieces = text.split(MASK)
    if len(pieces) < 2:
        raise AttnlabError(
            f"no {MASK} in {text!r}: write {MASK} where a word should be guessed, "
            f'e.g. "Friends, {MASK}, countrymen"'
        )
    ids: list[int] = []
    positions: list[int] = []
    for i, piece in enumerate(pieces):
        if i < len(pieces) - 1 and tokenizer.kind == "word" and piece.endswith(" "):
            piece = piece[:-1]
        ids.extend(tokenizer.encode(piece, unknown="unk") if piece else [])
        if i < len(pieces) - 1:
            positions.append(len(ids))
            ids.append(mask_id)
    return ids, positions


@torch.no_grad()
def fill_masks(model: EncoderLM, tokenizer: Any, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each ``[MASK]`` in ``text``, the ``top_k`` most likely tokens and their probabilities."""
    if not isinstance(model, EncoderLM):
        raise AttnlabError(
            f"fill needs an encoder run ('attnlab train encoder'), not a {model.model_type!r} model"
        )
    if not isinstance(top_k, int) or top_k < 1:
        raise AttnlabError(f"--top must be a positive integer, got {top_k!r}")
    ids, positions = encode_with_masks(tokenizer, text)
    if len(ids) > model.config.context_length:
        raise AttnlabError(
            f"the text is {len(ids)} tokens long; this model reads at most {model.config.context_length}"
        )
    model.eval()
    device = next(model.parameters()).device
    logits = model(torch.tensor([ids], dtype=torch.long, device=device))[0]
    probs = torch.softmax(logits.float(), dim=-1)
    banned = [i for i in (tokenizer._special_id(s) for s in tokenizer.specials) if i is not None]
    probs[:, banned] = 0.0  # never suggest <pad>, <unk> or [MASK] itself
    out = []
    for position in positions:
        values, indices = probs[position].topk(min(top_k, probs.shape[-1]))
        out.append([(tokenizer.id_to_token(int(i)), float(v)) for v, i in zip(values, indices)])
    return out


# =========================================================================================== recipes


class SmoothedTranslationObjective(TranslationObjective):
    """The seq2seq family's objective (same batches, same token count for tokens/s) with a
    label-smoothed training loss (plain cross-entropy in eval mode)."""

    def __init__(
        self,
        splits: dict[str, Any],
        src_tokenizer: Any,
        tgt_tokenizer: Any,
        seed: int = 0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(splits, src_tokenizer, tgt_tokenizer, seed=seed)
        self.label_smoothing = label_smoothing

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["src"], batch["src_mask"], batch["tgt_in"])
        smoothing = self.label_smoothing if model.training else 0.0
        return smoothed_cross_entropy(logits, batch["tgt_out"], batch["tgt_mask"], smoothing)


def load_translator(run: Any) -> Any:
    """A :class:`attnlab.models.seq2seq.Translator` (text in, text out) for a transformer run."""
    if isinstance(run, (str, Path)):
        from attnlab.data.tokenizers import load_tokenizer
        from attnlab.models.registry import load_model

        directory = Path(run)
        model = load_model(directory)
        if not isinstance(model, Transformer):
            raise AttnlabError(
                f"{directory} holds a {model.model_type!r} model, not a transformer "
                "(train one with 'attnlab train transformer --task dates-fr-en')"
            )
        return Translator(
            model,
            load_tokenizer(directory / SRC_TOKENIZER_FILE),
            load_tokenizer(directory / TGT_TOKENIZER_FILE),
        )
    tokenizers = getattr(run, "tokenizers", None) or {}
    if isinstance(getattr(run, "model", None), Transformer) and {"src_tokenizer", "tgt_tokenizer"} <= set(
        tokenizers
    ):
        return Translator(run.model, tokenizers["src_tokenizer"], tokenizers["tgt_tokenizer"])
    if getattr(run, "path", None) is not None:
        return load_translator(run.path)
    raise AttnlabError(f"cannot translate with {type(run).__name__}: give a transformer run folder")


def exact_match(
    translator: Any, pairs: Sequence[tuple[str, str]], beam: int = 1, batch_size: int = 256
) -> float:
    """Share of ``pairs`` whose translation equals the reference exactly."""
    if not pairs:
        return float("nan")
    outputs = translator.translate([s for s, _ in pairs], beam=beam, batch_size=batch_size)
    return sum(o == t for o, (_, t) in zip(outputs, pairs)) / len(pairs)


def task_tokenizers(data: Any, kind: str, shared: bool, vocab_size: int | None = None) -> tuple[Any, Any]:
    """Source and target tokenizers trained on the training split (one for both sides when ``shared``).

    ``kind="auto"``: characters for ``copy`` / ``reverse``, words otherwise.
    """
    from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, make_tokenizer

    if kind == "auto":
        kind = "char" if data.name.split("-k")[0] in ("copy", "reverse") else "word"
    if kind not in ("char", "word", "bpe"):
        raise AttnlabError(f"unknown tokenizer {kind!r}; choose auto, char, word or bpe")

    def train(text: str) -> Any:
        return make_tokenizer(kind, text, vocab_size=vocab_size, specials=SEQ2SEQ_SPECIALS)

    if shared:
        tok = train(data.text("source") + "\n" + data.text("target"))
        return tok, tok
    return train(data.text("source")), train(data.text("target"))


class TranslationRecipe:
    """``attnlab train transformer --task dates-fr-en``: sentence pairs -> tokenizers -> Transformer."""

    name = "transformer"
    help = "the 2017 Transformer encoder-decoder on a translation task (dates-*, copy, reverse, TSV)"
    default_preset = "small"

    @property
    def model_class(self) -> type:
        return Transformer

    @property
    def presets(self) -> dict[str, dict[str, Any]]:
        return PRESETS

    train_defaults = dict(
        steps=3000,
        batch_size=64,
        lr=1e-3,
        schedule="inverse_sqrt",
        warmup_steps=300,
        weight_decay=0.01,
        beta1=0.9,
        beta2=0.98,
        grad_clip=1.0,
        eval_every=250,
        eval_iters=10,
        ckpt_every=500,
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--task",
            default="dates-fr-en",
            help="dates-<src>-<tgt> (e.g. dates-fr-en), copy, reverse, or a TSV file of "
            "source<TAB>target lines (default: dates-fr-en)",
        )
        parser.add_argument(
            "--n-pairs",
            type=int,
            default=20000,
            help="distinct pairs to generate for a built-in task, split 80/10/10 (default 20000)",
        )
        parser.add_argument(
            "--k",
            type=int,
            default=1,
            help="items joined per sentence for generated tasks: longer inputs (default 1)",
        )
        parser.add_argument(
            "--tokenizer",
            choices=("auto", "char", "word", "bpe"),
            default="auto",
            help="auto: characters for copy/reverse, words otherwise (default auto)",
        )
        parser.add_argument(
            "--vocab-size",
            type=int,
            default=None,
            help="cap on the word vocabulary / BPE vocabulary size (default: every word; BPE 1024)",
        )

    def build(
        self,
        args: argparse.Namespace,
        run_dir: Path,
        resume: bool,
        model_overrides: dict[str, Any],
        seed: int,
    ) -> Any:
        from attnlab.data.tasks import load_task
        from attnlab.data.tokenizers import load_tokenizer
        from attnlab.training.recipes import Setup

        data = load_task(args.task, n_pairs=args.n_pairs, k=args.k, seed=DATA_SEED)
        preset = args.preset or self.default_preset
        shared = bool(model_overrides.get("share_embeddings", False))
        if resume:
            src_tok = load_tokenizer(run_dir / SRC_TOKENIZER_FILE)
            tgt_tok = load_tokenizer(run_dir / TGT_TOKENIZER_FILE)
        else:
            src_tok, tgt_tok = task_tokenizers(data, args.tokenizer, shared, args.vocab_size)
        pairs = [p for split in ("train", "val", "test") for p in data.split(split)]
        longest_target = max(len(tgt_tok.encode(t, unknown="unk")) for _, t in pairs)
        longest = max(longest_target + 1, max(len(src_tok.encode(s, unknown="unk")) for s, _ in pairs))
        config = config_from_preset(
            TransformerConfig,
            PRESETS,
            preset,
            "transformer",
            {"max_length": max(256, 2 * longest), **model_overrides},
            src_vocab_size=src_tok.vocab_size,
            tgt_vocab_size=tgt_tok.vocab_size,
            pad_id=tgt_tok.pad_id,
            bos_id=tgt_tok.bos_id,
            eos_id=tgt_tok.eos_id,
            max_target_len=int(1.25 * longest_target) + 5,
        )
        model = Transformer(config)
        objective = SmoothedTranslationObjective(
            {"train": data.train, "val": data.val},
            src_tok,
            tgt_tok,
            seed=seed,
            label_smoothing=config.label_smoothing,
        )

        def sample(trained: Transformer) -> str:
            from attnlab.evaluation import translation_metrics

            translator = Translator(trained, src_tok, tgt_tok)
            test = data.test[:1000]
            hyps = translator.translate([s for s, _ in test])
            metrics = translation_metrics(hyps, [t for _, t in test])
            lines = [
                f"{s}  ->  {h}" + ("" if h == t else f"   (reference: {t})")
                for (s, t), h in list(zip(test, hyps))[:5]
            ]
            lines.append(
                f"greedy on {len(test)} test pairs: exact match {metrics['exact_match']:.1%}, "
                f"CER {metrics['cer']:.2%}, BLEU {metrics['bleu']:.1f} "
                f"(full test split: attnlab evaluate {run_dir})"
            )
            return "\n".join(lines)

        return Setup(
            model=model,
            objective=objective,
            train_defaults=dict(self.train_defaults),
            files={SRC_TOKENIZER_FILE: src_tok.save, TGT_TOKENIZER_FILE: tgt_tok.save},
            run_info={
                "task": data.name,
                "data_seed": DATA_SEED,
                "train_pairs": len(data.train),
                "val_pairs": len(data.val),
                "test_pairs": len(data.test),
                "shared_vocabulary": shared,
            },
            sample=sample,
        )


class EncoderRecipe:
    """``attnlab train encoder``: a text corpus -> word or char tokens -> masked-token training."""

    name = "encoder"
    help = "an encoder-only (BERT-like) Transformer trained to fill in [MASK]ed words of a corpus"
    default_preset = "small"
    tokenizer_file = "tokenizer.json"
    train_defaults = dict(
        steps=2000,
        batch_size=32,
        lr=5e-4,
        schedule="cosine",
        warmup_steps=100,
        weight_decay=0.01,
        beta2=0.99,
        eval_every=250,
        eval_iters=10,
        ckpt_every=500,
    )

    @property
    def model_class(self) -> type:
        return EncoderLM

    @property
    def presets(self) -> dict[str, dict[str, Any]]:
        return ENCODER_PRESETS

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from attnlab.training.recipes import add_corpus_arguments

        add_corpus_arguments(parser)
        parser.add_argument(
            "--tokenizer",
            choices=("word", "char"),
            default="word",
            help="word: [MASK] hides a whole word (default); char: one character",
        )
        parser.add_argument(
            "--vocab-size",
            type=int,
            default=None,
            help="keep only the most frequent words (default: every word of the corpus)",
        )

    def build(
        self,
        args: argparse.Namespace,
        run_dir: Path,
        resume: bool,
        model_overrides: dict[str, Any],
        seed: int,
    ) -> Any:
        from attnlab.data.corpora import load_corpus, split_train_val
        from attnlab.data.tokenizers import PAD, UNK, load_tokenizer, make_tokenizer
        from attnlab.training.recipes import Setup, text_fingerprint

        text = load_corpus(args.data)
        train_text, val_text = split_train_val(text, args.val_fraction)
        if resume:
            tokenizer = load_tokenizer(run_dir / self.tokenizer_file)
        else:
            tokenizer = make_tokenizer(
                args.tokenizer, train_text, vocab_size=args.vocab_size, specials=(PAD, UNK, MASK)
            )
        train_ids = torch.tensor(tokenizer.encode(train_text, unknown="unk"), dtype=torch.long)
        val_ids = torch.tensor(tokenizer.encode(val_text, unknown="unk"), dtype=torch.long)
        config = config_from_preset(
            EncoderConfig,
            ENCODER_PRESETS,
            args.preset or self.default_preset,
            "encoder",
            model_overrides,
            vocab_size=tokenizer.vocab_size,
            mask_id=tokenizer._special_id(MASK),
        )
        model = EncoderLM(config)
        objective = MaskedLMObjective(train_ids, val_ids, config, seed=seed, protected=(tokenizer.pad_id,))
        prompt = f"Friends, {MASK}, countrymen" if args.tokenizer == "word" else f"Friends, Rom{MASK}ns"

        def sample(trained: Any) -> str:
            guesses = fill_masks(trained, tokenizer, prompt)
            return (
                prompt
                + "\n"
                + "\n".join(
                    "  " + ", ".join(f"{token.strip() or token!r} {p:.2f}" for token, p in row)
                    for row in guesses
                )
            )

        return Setup(
            model=model,
            objective=objective,
            train_defaults=dict(self.train_defaults),
            files={self.tokenizer_file: tokenizer.save},
            run_info={
                "data": args.data,
                "data_fingerprint": text_fingerprint(text),
                "tokenizer": args.tokenizer,
                "train_tokens": len(train_ids),
                "val_tokens": len(val_ids),
            },
            sample=sample,
        )


TRANSFORMER_RECIPE = TranslationRecipe()
ENCODER_RECIPE = EncoderRecipe()
