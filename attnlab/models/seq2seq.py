"""RNN encoder-decoders for translation, with and without Bahdanau attention.

**Without attention** (the 1980s RNN / 1997 LSTM encoder-decoder; Cho et al. and Sutskever et al.
2014): the encoder reads the source left to right and its final state is all the decoder gets.

    h_j = f(x_j, h_{j-1})                               encoder, j = 1..S
    s_0 = h_S                                           the decoder starts from the final state
    s_i = g(E y_{i-1}, s_{i-1})                         decoder, i = 1..T
    P(y_i | y_<i, x) = softmax(V tanh(W_o [s_i; E y_{i-1}]))

**With attention** (Bahdanau, Cho & Bengio 2014, "RNNsearch"): a bidirectional encoder keeps one
annotation per source position, ``h_j = [h_j^forward; h_j^backward]``, and every decoder step
looks back at all of them:

    s_0 = tanh(W_s [h^forward_S; h^backward_1])          the bridge
    alpha_i = softmax_j(v^T tanh(W s_{i-1} + U h_j))     additive attention (padding masked)
    c_i = sum_j alpha_ij h_j                             context vector
    s_i = g([E y_{i-1}; c_i], s_{i-1})                   decoder input = previous token + context
    P(y_i | y_<i, x) = softmax(V tanh(W_o [s_i; c_i; E y_{i-1}]))

``g`` and ``f`` are Elman RNN, GRU or LSTM cells (``cell``), stacked ``n_layer`` deep. Training
uses teacher forcing: ``y_{i-1}`` is the reference token, or with probability
``1 - teacher_forcing`` the model's own previous prediction. Decoding is greedy or beam search
(:func:`attnlab.inference.search.decode`) through :meth:`Seq2Seq.start_decoding` and
:meth:`Seq2Seq.step`, batched; the attention weights of each step come back with the translation
(:meth:`attnlab.inference.translate.Translator.alignment`).

The attention is :class:`attnlab.layers.additive.AdditiveAttention` (``U h_j`` computed once per
sentence). :func:`attnlab.equivalence.use_scratch_attention` swaps in the overview's
:class:`attnlab.scratch.bahdanau.BahdanauAttention`, which recomputes it every step (same
parameters, same results, slower: see benchmarks/seq2seq.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.checkpoint import Savable, config_from_preset
from attnlab.errors import AttnlabError, require_positive_fields
from attnlab.layers.additive import AdditiveAttention
from attnlab.layers.loss import masked_cross_entropy

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
ATTENTIONS = ("none", "bahdanau")


@dataclass
class Seq2SeqConfig:
    """Shape of an RNN encoder-decoder. ``bidirectional=None`` means: bidirectional iff attention.

    Field names follow every attnlab config (``n_embd``, ``n_layer``, ``dropout``); runs saved with
    the older ``emb_dim`` / ``num_layers`` / ``attention_impl`` still load (``renamed_fields``).
    """

    renamed_fields: ClassVar[dict[str, str | None]] = {"emb_dim": "n_embd", "num_layers": "n_layer",
                                                       "attention_impl": None}

    src_vocab_size: int = 64
    tgt_vocab_size: int = 64
    cell: str = "gru"  # rnn | gru | lstm
    attention: str = "bahdanau"  # none | bahdanau
    n_embd: int = 64  # token embedding width (source and target)
    hidden_size: int = 128  # per direction in the encoder; the decoder state size
    n_layer: int = 1  # stacked RNN layers, in the encoder and in the decoder
    attn_dim: int | None = None  # hidden size of the alignment model (None: hidden_size)
    bidirectional: bool | None = None
    dropout: float = 0.0
    teacher_forcing: float = 1.0  # probability of feeding the reference token during training
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    max_target_len: int = 64  # default length limit when decoding

    def __post_init__(self) -> None:
        sizes = ("src_vocab_size", "tgt_vocab_size", "n_embd", "hidden_size", "n_layer", "max_target_len")
        require_positive_fields(self, sizes)
        if self.cell not in CELLS:
            raise AttnlabError(f"Seq2SeqConfig.cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise AttnlabError(f"Seq2SeqConfig.attention must be one of {', '.join(ATTENTIONS)}, "
                               f"got {self.attention!r}")
        if self.attn_dim is None:
            self.attn_dim = self.hidden_size
        require_positive_fields(self, ("attn_dim",))
        if self.bidirectional is None:
            self.bidirectional = self.attention != "none"
        if not 0.0 <= self.dropout < 1.0:
            raise AttnlabError(f"Seq2SeqConfig.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise AttnlabError(f"Seq2SeqConfig.teacher_forcing must be in [0, 1], got {self.teacher_forcing}")
        specials = (self.pad_id, self.bos_id, self.eos_id)
        if len(set(specials)) != 3 or min(specials) < 0 or max(specials) >= self.tgt_vocab_size:
            raise AttnlabError(f"Seq2SeqConfig: pad/bos/eos ids {specials} must be distinct ids of the "
                               f"target vocabulary (0..{self.tgt_vocab_size - 1})")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n_embd=16, hidden_size=32),  # tests: trains in seconds
    "small": dict(n_embd=32, hidden_size=64),  # `attnlab train bahdanau`: dates-fr-en in minutes on a CPU
    "base": dict(n_embd=64, hidden_size=128),
    "large": dict(n_embd=128, hidden_size=256, n_layer=2, dropout=0.1),
    "rnnsearch": dict(n_embd=620, hidden_size=1000, attn_dim=1000),  # the paper's size (GPU territory)
}


def preset_config(name: str, **overrides: Any) -> Seq2SeqConfig:
    return config_from_preset(Seq2SeqConfig, PRESETS, name, "seq2seq", overrides)


# ---------------------------------------------------------------------------------------- encoder


class Encoder(nn.Module):
    """Embeds the source and runs a (bi)directional RNN over it, skipping padding (packed sequences)."""

    def __init__(self, c: Seq2SeqConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(c.src_vocab_size, c.n_embd, padding_idx=c.pad_id)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = CELLS[c.cell](c.n_embd, c.hidden_size, num_layers=c.n_layer, batch_first=True,
                                 bidirectional=c.bidirectional,
                                 dropout=c.dropout if c.n_layer > 1 else 0.0)
        self.directions = 2 if c.bidirectional else 1

    def forward(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        """``src`` (B, S) ids, ``src_mask`` (B, S) true at real tokens -> annotations (B, S, D*H)
        (zero at padding) and the final state(s) (L*D, B, H) at each sequence's true end."""
        lengths = src_mask.sum(1)
        if bool((lengths == 0).any()):
            raise AttnlabError("a source sentence is empty; every source needs at least one token")
        packed = pack_padded_sequence(self.drop(self.embed(src)), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, final = self.rnn(packed)
        annotations, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return annotations, final


# ---------------------------------------------------------------------------------------- model


class Seq2Seq(Savable, nn.Module):
    """RNN encoder-decoder, with (``attention="bahdanau"``) or without attention; see the module docstring."""

    model_type: ClassVar[str] = "seq2seq"
    config_class: ClassVar[type] = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = Encoder(c)
        self.annotation_dim = c.hidden_size * self.encoder.directions
        self.attends = c.attention == "bahdanau"
        self.is_lstm = c.cell == "lstm"
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.n_embd, padding_idx=c.pad_id)
        self.drop = nn.Dropout(c.dropout)
        context_dim = self.annotation_dim if self.attends else 0
        self.decoder = CELLS[c.cell](c.n_embd + context_dim, c.hidden_size, num_layers=c.n_layer,
                                     batch_first=True, dropout=c.dropout if c.n_layer > 1 else 0.0)
        if self.attends:
            self.attention = AdditiveAttention(c.hidden_size, self.annotation_dim, c.attn_dim)
        # encoder final state -> decoder initial state (needed when the sizes differ: two directions)
        self.bridge = nn.Linear(self.annotation_dim, c.hidden_size) if c.bidirectional else None
        self.bridge_cell = (nn.Linear(self.annotation_dim, c.hidden_size)
                            if c.bidirectional and self.is_lstm else None)
        self.readout = nn.Linear(c.hidden_size + context_dim + c.n_embd, c.hidden_size)
        self.out = nn.Linear(c.hidden_size, c.tgt_vocab_size)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- encoder side -------------------------------------------------------------------------
    def _initial(self, final: Tensor, bridge: nn.Linear | None, squash: bool) -> Tensor:
        """Encoder final states (L*D, B, H) -> decoder initial states (B, L, H)."""
        L, D = self.config.n_layer, self.encoder.directions
        final = final.view(L, D, final.shape[1], -1)  # PyTorch orders layers then directions
        if bridge is None:
            state = final[:, 0]
        else:
            state = bridge(torch.cat([final[:, d] for d in range(D)], dim=-1))
            state = torch.tanh(state) if squash else state
        return state.transpose(0, 1).contiguous()

    def encode(self, src: Tensor, src_mask: Tensor) -> dict[str, Tensor]:
        """Run the encoder and return the decoder's starting state (a dict of (B, ...) tensors).

        Keys: ``h`` (B, L, H) decoder state, ``c`` (LSTM cell state), and with attention
        ``memory`` (B, S, 2H) annotations, ``keys`` (B, S, attn_dim) precomputed ``U h_j``, ``bias``
        (B, S) the padding mask as 0 / -inf, ``attn`` (B, S) the latest attention weights.
        """
        src_mask = src_mask.bool()
        annotations, final = self.encoder(src, src_mask)
        if self.is_lstm:
            h_final, c_final = final
        else:
            h_final, c_final = final, None
        state = {"h": self._initial(h_final, self.bridge, squash=True)}
        if c_final is not None:
            state["c"] = self._initial(c_final, self.bridge_cell, squash=False)
        if self.attends:
            state["memory"] = annotations
            state["keys"] = self.attention.keys(annotations)
            state["bias"] = self.attention.mask_bias(src_mask)
            state["attn"] = src_mask.new_zeros(src_mask.shape, dtype=annotations.dtype)
        return state

    # ---- decoder side -------------------------------------------------------------------------
    def attend(self, state: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``c_i, alpha_i`` from the top layer of ``s_{i-1}``."""
        return self.attention(state["h"][:, -1], state["memory"], state["keys"], state["bias"])

    def _advance(self, emb: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One decoder step from the embedded previous token: returns the readout input and the new state."""
        new = dict(state)
        if self.attends:
            context, alpha = self.attend(state)
            rnn_in = torch.cat([emb, context], dim=-1)
            new["attn"] = alpha
        else:
            rnn_in = emb
        h0 = state["h"].transpose(0, 1).contiguous()
        hidden = (h0, state["c"].transpose(0, 1).contiguous()) if self.is_lstm else h0
        output, hidden = self.decoder(rnn_in.unsqueeze(1), hidden)
        if self.is_lstm:
            new["h"], new["c"] = hidden[0].transpose(0, 1), hidden[1].transpose(0, 1)
        else:
            new["h"] = hidden.transpose(0, 1)
        parts = [output.squeeze(1), context, emb] if self.attends else [output.squeeze(1), emb]
        return torch.cat(parts, dim=-1), new

    def _logits(self, features: Tensor) -> Tensor:
        return self.out(self.drop(torch.tanh(self.readout(features))))

    def start_decoding(self, src: Tensor, src_mask: Tensor) -> dict[str, Tensor]:
        """The search's starting state (:meth:`encode`); ``state["attn"]`` is recorded when the model attends."""
        return self.encode(src, src_mask)

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The search step: previous tokens (N,) and state -> log P(next token) (N, V) and the new state."""
        features, state = self._advance(self.drop(self.tgt_embed(tokens)), state)
        return F.log_softmax(self._logits(features).float(), dim=-1), state

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, teacher_forcing: float | None = None,
                need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits (B, T, V) for the targets ``tgt_out`` given ``tgt_in`` (``<bos>`` + target).

        ``teacher_forcing``: probability of feeding the reference token (default: the config's value
        in training mode, 1 in eval mode). With ``need_weights``, also returns the attention weights
        (B, T, S).
        """
        if teacher_forcing is None:
            teacher_forcing = self.config.teacher_forcing if self.training else 1.0
        state = self.encode(src, src_mask)
        emb = self.drop(self.tgt_embed(tgt_in))
        if not self.attends and teacher_forcing >= 1.0 and not need_weights:
            return self._forced_without_attention(emb, state)
        features, weights = [], []
        token_emb = emb[:, 0]
        for t in range(tgt_in.shape[1]):
            if t > 0 and teacher_forcing < 1.0:
                own = self.drop(self.tgt_embed(self._logits(features[-1]).argmax(-1)))
                use_reference = torch.rand(tgt_in.shape[0], 1, device=tgt_in.device) < teacher_forcing
                token_emb = torch.where(use_reference, emb[:, t], own)
            elif t > 0:
                token_emb = emb[:, t]
            feature, state = self._advance(token_emb, state)
            features.append(feature)
            if need_weights and self.attends:
                weights.append(state["attn"])
        logits = self._logits(torch.stack(features, dim=1))
        if need_weights:
            empty = logits.new_zeros(*tgt_in.shape, src.shape[1])  # no attention: no weights
            return logits, (torch.stack(weights, 1) if weights else empty)
        return logits

    def _forced_without_attention(self, emb: Tensor, state: dict[str, Tensor]) -> Tensor:
        """No attention, reference inputs: the whole target in one RNN call (same result as the loop)."""
        h0 = state["h"].transpose(0, 1).contiguous()
        hidden = (h0, state["c"].transpose(0, 1).contiguous()) if self.is_lstm else h0
        output, _ = self.decoder(emb, hidden)
        return self._logits(torch.cat([output, emb], dim=-1))

    def loss(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, tgt_out: Tensor,
             tgt_mask: Tensor) -> Tensor:
        """Mean cross-entropy over the real (unpadded) target tokens."""
        logits = self(src, src_mask, tgt_in)
        return masked_cross_entropy(logits, tgt_out, tgt_mask)

    # ---- persistence --------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Seq2Seq:
        return cls(preset_config(name, **overrides))

    def with_config(self, **changes: Any) -> Seq2SeqConfig:
        return dataclasses.replace(self.config, **changes)

