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

``g`` and ``f`` are Elman RNN, GRU or LSTM cells (``cell``), stacked ``num_layers`` deep. Training
uses teacher forcing: ``y_{i-1}`` is the reference token, or with probability
``1 - teacher_forcing`` the model's own previous prediction. Decoding is greedy or beam search
(:mod:`attnlab.inference.search`) through :meth:`Seq2Seq.step`, batched; the attention weights of
each step come back with the translation (:func:`alignment`, :func:`plot_alignment`).

The attention is :class:`attnlab.layers.additive.AdditiveAttention` (``U h_j`` computed once per
sentence); ``attention_impl="scratch"`` swaps in :class:`attnlab.scratch.bahdanau.BahdanauAttention`,
which recomputes it every step (same parameters, same results, slower: see benchmarks/seq2seq.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.checkpoint import Savable, config_from_preset
from attnlab.errors import AttnlabError, require_positive_fields
from attnlab.inference.search import DecodeResult, beam_search, greedy_decode
from attnlab.layers.additive import AdditiveAttention
from attnlab.scratch.bahdanau import BahdanauAttention

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
ATTENTIONS = ("none", "bahdanau")
ATTENTION_IMPLS = ("fast", "scratch")


@dataclass
class Seq2SeqConfig:
    """Shape of an RNN encoder-decoder. ``bidirectional=None`` means: bidirectional iff attention."""

    src_vocab_size: int = 64
    tgt_vocab_size: int = 64
    cell: str = "gru"  # rnn | gru | lstm
    attention: str = "bahdanau"  # none | bahdanau
    emb_dim: int = 64
    hidden_size: int = 128  # per direction in the encoder; the decoder state size
    num_layers: int = 1
    attn_dim: int | None = None  # hidden size of the alignment model (None: hidden_size)
    bidirectional: bool | None = None
    dropout: float = 0.0
    teacher_forcing: float = 1.0  # probability of feeding the reference token during training
    attention_impl: str = "fast"  # fast (precomputed keys) | scratch (attnlab.scratch, recomputed)
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    max_target_len: int = 64  # default length limit when decoding

    def __post_init__(self) -> None:
        sizes = ("src_vocab_size", "tgt_vocab_size", "emb_dim", "hidden_size", "num_layers", "max_target_len")
        require_positive_fields(self, sizes)
        if self.cell not in CELLS:
            raise AttnlabError(f"Seq2SeqConfig.cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise AttnlabError(f"Seq2SeqConfig.attention must be one of {', '.join(ATTENTIONS)}, "
                               f"got {self.attention!r}")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise AttnlabError(f"Seq2SeqConfig.attention_impl must be one of {', '.join(ATTENTION_IMPLS)}, "
                               f"got {self.attention_impl!r}")
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
    "tiny": dict(emb_dim=16, hidden_size=32),  # tests: trains in seconds
    "small": dict(emb_dim=32, hidden_size=64),  # `attnlab train bahdanau`: dates-fr-en in minutes on a CPU
    "base": dict(emb_dim=64, hidden_size=128),
    "large": dict(emb_dim=128, hidden_size=256, num_layers=2, dropout=0.1),
    "rnnsearch": dict(emb_dim=620, hidden_size=1000, attn_dim=1000),  # the paper's size (GPU territory)
}


def preset_config(name: str, **overrides: Any) -> Seq2SeqConfig:
    return config_from_preset(Seq2SeqConfig, PRESETS, name, "seq2seq", overrides)


# ---------------------------------------------------------------------------------------- encoder


class Encoder(nn.Module):
    """Embeds the source and runs a (bi)directional RNN over it, skipping padding (packed sequences)."""

    def __init__(self, c: Seq2SeqConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(c.src_vocab_size, c.emb_dim, padding_idx=c.pad_id)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = CELLS[c.cell](c.emb_dim, c.hidden_size, num_layers=c.num_layers, batch_first=True,
                                 bidirectional=c.bidirectional,
                                 dropout=c.dropout if c.num_layers > 1 else 0.0)
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
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.emb_dim, padding_idx=c.pad_id)
        self.drop = nn.Dropout(c.dropout)
        context_dim = self.annotation_dim if self.attends else 0
        self.decoder = CELLS[c.cell](c.emb_dim + context_dim, c.hidden_size, num_layers=c.num_layers,
                                     batch_first=True, dropout=c.dropout if c.num_layers > 1 else 0.0)
        if self.attends:
            impl = AdditiveAttention if c.attention_impl == "fast" else BahdanauAttention
            self.attention = impl(c.hidden_size, self.annotation_dim, c.attn_dim)
        # encoder final state -> decoder initial state (needed when the sizes differ: two directions)
        self.bridge = nn.Linear(self.annotation_dim, c.hidden_size) if c.bidirectional else None
        self.bridge_cell = (nn.Linear(self.annotation_dim, c.hidden_size)
                            if c.bidirectional and self.is_lstm else None)
        self.readout = nn.Linear(c.hidden_size + context_dim + c.emb_dim, c.hidden_size)
        self.out = nn.Linear(c.hidden_size, c.tgt_vocab_size)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- encoder side -------------------------------------------------------------------------
    def _initial(self, final: Tensor, bridge: nn.Linear | None, squash: bool) -> Tensor:
        """Encoder final states (L*D, B, H) -> decoder initial states (B, L, H)."""
        L, D = self.config.num_layers, self.encoder.directions
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
        ``memory`` (B, S, 2H) annotations, ``mask`` (B, S), ``keys`` (B, S, attn_dim) precomputed
        ``U h_j`` (fast attention only), ``attn`` (B, S) the latest attention weights.
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
            state["mask"] = src_mask
            if isinstance(self.attention, AdditiveAttention):
                state["keys"] = self.attention.keys(annotations)
                state["bias"] = AdditiveAttention.mask_bias(src_mask)
            state["attn"] = src_mask.new_zeros(src_mask.shape, dtype=annotations.dtype)
        return state

    # ---- decoder side -------------------------------------------------------------------------
    def attend(self, state: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``c_i, alpha_i`` from the top layer of ``s_{i-1}``."""
        s_prev = state["h"][:, -1]
        if isinstance(self.attention, AdditiveAttention):
            return self.attention(s_prev, state["memory"], state["keys"], state["bias"])
        return self.attention(s_prev, state["memory"], state["mask"])

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

    # ---- decoding -----------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, src: Tensor, src_mask: Tensor, beam: int = 1, max_len: int | None = None,
               length_penalty: float = 1.0) -> DecodeResult:
        """Translate a batch: greedy (``beam=1``) or beam search. ``recorded`` holds the attention
        weights (B, T, S) when the model attends."""
        was_training = self.training
        self.eval()
        try:
            state = self.encode(src, src_mask.bool())
            max_len = max_len or self.config.max_target_len
            record = "attn" if self.attends else None
            c = self.config
            if beam == 1:
                return greedy_decode(self.step, state, c.bos_id, c.eos_id, max_len, src.shape[0],
                                     record=record)
            return beam_search(self.step, state, c.bos_id, c.eos_id, max_len, beam, length_penalty,
                               batch_size=src.shape[0], record=record)
        finally:
            self.train(was_training)

    # ---- persistence --------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Seq2Seq:
        return cls(preset_config(name, **overrides))

    def with_config(self, **changes: Any) -> Seq2SeqConfig:
        return dataclasses.replace(self.config, **changes)


def masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Mean cross-entropy over positions where ``mask`` is true (padding ignored)."""
    flat = logits.float().reshape(-1, logits.size(-1))
    losses = F.cross_entropy(flat, targets.reshape(-1), reduction="none")
    mask = mask.reshape(-1).to(losses.dtype)
    return (losses * mask).sum() / mask.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------- text in, text out


@dataclass
class Translator:
    """A trained model with its two tokenizers: text in, text out."""

    model: Seq2Seq
    src_tokenizer: Any
    tgt_tokenizer: Any

    def encode_sources(self, texts: Sequence[str]) -> tuple[Tensor, Tensor, list[list[int]]]:
        """Texts -> padded ids (B, S), mask (B, S), and the id lists (unknown pieces become ``<unk>``)."""
        pad = self.model.config.pad_id
        ids = [self.src_tokenizer.encode(text) for text in texts]
        for text, row in zip(texts, ids):
            if not row:
                raise AttnlabError(f"nothing to translate in {text!r}: the source text is empty")
        width = max(len(row) for row in ids)
        device = next(self.model.parameters()).device
        src = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.bool)
        for i, row in enumerate(ids):
            src[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = True
        return src.to(device), mask.to(device), ids

    def translate(self, texts: str | Sequence[str], beam: int = 1, max_len: int | None = None,
                  batch_size: int = 256, length_penalty: float = 1.0) -> str | list[str]:
        """Translate one text (returns a string) or many (returns a list), in batches."""
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        out: list[str] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            src, mask, _ = self.encode_sources(chunk)
            result = self.model.decode(src, mask, beam=beam, max_len=max_len, length_penalty=length_penalty)
            out.extend(self.tgt_tokenizer.decode(row) for row in result.sequences())
        return out[0] if single else out

    def alignment(self, text: str, beam: int = 1, max_len: int | None = None
                  ) -> tuple[list[str], list[str], Tensor]:
        """Translate ``text`` and return (source tokens, target tokens incl. ``<eos>``, weights (T, S))."""
        if not self.model.attends:
            raise AttnlabError("this model has no attention (attention='none'), so there is no alignment "
                               "to draw; train 'attnlab train bahdanau' instead")
        src, mask, ids = self.encode_sources([text])
        result = self.model.decode(src, mask, beam=beam, max_len=max_len)
        (target,) = result.sequences(keep_eos=True)
        weights = result.recorded[0, : len(target), : len(ids[0])].detach().cpu()
        return self.src_tokenizer.tokens(ids[0]), self.tgt_tokenizer.tokens(target), weights


SRC_TOKENIZER_FILE = "src_tokenizer.json"
TGT_TOKENIZER_FILE = "tgt_tokenizer.json"


def load_translator(run: Any) -> Translator:
    """A :class:`Translator` from a run folder (path), an ``attnlab.runs.Run``, or a Translator."""
    if isinstance(run, Translator):
        return run
    if isinstance(run, (str, Path)):
        from attnlab.data.tokenizers import load_tokenizer
        from attnlab.models.registry import load_model

        directory = Path(run)
        model = load_model(directory)
        if not isinstance(model, Seq2Seq):
            raise AttnlabError(f"{directory} holds a {model.model_type!r} model, not an RNN encoder-decoder "
                               "(train one with 'attnlab train bahdanau --task dates-fr-en')")
        return Translator(model, load_tokenizer(directory / SRC_TOKENIZER_FILE),
                          load_tokenizer(directory / TGT_TOKENIZER_FILE))
    model = getattr(run, "model", None)
    tokenizers = getattr(run, "tokenizers", None) or {}
    src_tok, tgt_tok = (tokenizers.get(Path(name).stem) for name in (SRC_TOKENIZER_FILE, TGT_TOKENIZER_FILE))
    if isinstance(model, Seq2Seq) and src_tok is not None and tgt_tok is not None:
        return Translator(model, src_tok, tgt_tok)
    directory = getattr(run, "path", None)
    if directory is not None:
        return load_translator(directory)
    raise AttnlabError(f"cannot translate with {type(run).__name__}: give a run folder of a seq2seq model")


def alignment(run_or_model: Any, text: str, beam: int = 1, max_len: int | None = None
              ) -> tuple[list[str], list[str], Tensor]:
    """(source tokens, target tokens, attention weights (T, S)) for translating ``text``.

    ``run_or_model``: a run folder, an ``attnlab.runs.Run`` or a :class:`Translator`.
    Row ``i`` of the weights is ``alpha_i``: where the decoder looked while writing target token ``i``.
    """
    return load_translator(run_or_model).alignment(text, beam=beam, max_len=max_len)


def plot_alignment(src_tokens: Sequence[str], tgt_tokens: Sequence[str], weights: Any, path: str | Path,
                   title: str | None = None) -> Path:
    """Draw the target-by-source attention matrix (token labels, colour bar) to a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnlab.io import write_atomic
    from attnlab.viz.extract import display_token

    weights = torch.as_tensor(weights).detach().float().cpu().numpy()
    if weights.shape != (len(tgt_tokens), len(src_tokens)):
        raise AttnlabError(f"alignment weights have shape {weights.shape}, expected "
                           f"({len(tgt_tokens)} target, {len(src_tokens)} source tokens)")
    label = [display_token(t) for t in src_tokens]
    tlabel = [display_token(t) for t in tgt_tokens]
    width = max(4.0, 0.32 * len(src_tokens) + 2.0)
    height = max(3.0, 0.32 * len(tgt_tokens) + 1.5)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), label, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tgt_tokens)), tlabel, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="attention weight")
    fig.tight_layout()
    path = Path(path)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------- training


class TranslationObjective:
    """Teacher-forced cross-entropy on batches of sentence pairs, a pure function of (seed, split, step).

    Each split is encoded and padded once; a batch draws random pairs and trims the padding
    columns nobody in the batch needs. Tokens counted for tokens/s: real target tokens.
    """

    def __init__(self, splits: dict[str, Sequence[tuple[str, str]]], src_tokenizer: Any, tgt_tokenizer: Any,
                 seed: int = 0) -> None:
        from attnlab.data.tasks import encode_pairs

        self.seed = seed
        self.encoded = {}
        for split, pairs in splits.items():
            if not pairs:
                raise AttnlabError(f"the {split} split has no pairs; use more pairs (--n-pairs)")
            encoded = encode_pairs(pairs, src_tokenizer, tgt_tokenizer)
            keep = ("src", "src_mask", "tgt_in", "tgt_out", "tgt_mask")
            self.encoded[split] = {k: encoded[k] for k in keep}

    def batch(self, split: str, step: int, batch_size: int) -> dict[str, Tensor]:
        from attnlab.data.batching import batch_generator

        data = self.encoded[split]
        n = data["src"].shape[0]
        index = torch.randint(n, (batch_size,), generator=batch_generator(self.seed, split, step))
        src_len = int(data["src_mask"][index].sum(1).max())
        tgt_len = int(data["tgt_mask"][index].sum(1).max())
        return {k: v[index, : (src_len if k.startswith("src") else tgt_len)] for k, v in data.items()}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["src"], batch["src_mask"], batch["tgt_in"])
        return masked_cross_entropy(logits, batch["tgt_out"], batch["tgt_mask"])

    def count_tokens(self, batch: dict[str, Tensor]) -> int:
        return int(batch["tgt_mask"].sum())


DATA_SEED = 0  # the task's pairs and splits do not depend on the training seed


def load_run_task(run_info: dict[str, Any]) -> Any:
    """The :class:`attnlab.data.tasks.TranslationData` a run was trained on, from its run.json."""
    from attnlab.data.tasks import load_task

    args = run_info.get("args", {})
    if "task" not in args:
        raise AttnlabError("this run's run.json names no translation task; was it trained by "
                           "'attnlab train bahdanau' (or seq2seq-*)?")
    return load_task(args["task"], n_pairs=args.get("n_pairs", 20000), k=args.get("k", 1),
                     seed=run_info.get("data_seed", DATA_SEED))


class TranslationRecipe:
    """``attnlab train bahdanau | seq2seq-rnn | -gru | -lstm``: task -> two tokenizers -> model."""

    model_class = Seq2Seq
    presets = PRESETS
    default_preset = "small"

    def __init__(self, name: str, help: str, cell: str, attention: str,
                 train_defaults: dict[str, Any]) -> None:
        self.name, self.help, self.cell, self.attention = name, help, cell, attention
        self.train_defaults = train_defaults

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--task", default="dates-fr-en",
                            help="dates-<src>-<tgt> (any two Babel locales, or iso as target), copy, "
                                 "reverse, or a TSV file of source<TAB>target lines")
        parser.add_argument("--k", type=int, default=1, help="items joined per sentence (length knob)")
        parser.add_argument("--n-pairs", type=int, default=20000,
                            help="distinct pairs to generate, split 80/10/10 into train/val/test")
        parser.add_argument("--tokenizer", choices=("char", "word"), default="char",
                            help="char: one token per character; word: words and punctuation")
        parser.add_argument("--vocab-size", type=int, default=None, help="cap on the word vocabulary")

    def make_config(self, preset: str, overrides: dict[str, Any], src_tok: Any, tgt_tok: Any,
                    max_target_len: int) -> Seq2SeqConfig:
        # the kind's cell and attention; the presets only size the model, --set may still change them
        return config_from_preset(Seq2SeqConfig, PRESETS, preset, self.name,
                                  {"cell": self.cell, "attention": self.attention, **overrides},
                                  src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size,
                                  pad_id=tgt_tok.pad_id, bos_id=tgt_tok.bos_id, eos_id=tgt_tok.eos_id,
                                  max_target_len=max_target_len)

    def build(self, args: Any, run_dir: Path, resume: bool, model_overrides: dict[str, Any],
              seed: int) -> Any:
        import os

        from attnlab.data.tasks import load_task
        from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, load_tokenizer, make_tokenizer
        from attnlab.training.recipes import Setup

        no_choice = getattr(args, "threads", None) is None and "OMP_NUM_THREADS" not in os.environ
        if getattr(args, "device", "cpu") == "cpu" and no_choice:
            # A small RNN's operations are too small to split across threads; a second thread only
            # spins, and on a busy machine that made training many times slower. --threads and
            # OMP_NUM_THREADS win.
            torch.set_num_threads(1)

        data = load_task(args.task, n_pairs=args.n_pairs, k=args.k, seed=DATA_SEED)
        if resume:
            src_tok = load_tokenizer(run_dir / SRC_TOKENIZER_FILE)
            tgt_tok = load_tokenizer(run_dir / TGT_TOKENIZER_FILE)
        else:
            src_tok = make_tokenizer(args.tokenizer, data.text("source"), vocab_size=args.vocab_size,
                                     specials=SEQ2SEQ_SPECIALS)
            tgt_tok = make_tokenizer(args.tokenizer, data.text("target"), vocab_size=args.vocab_size,
                                     specials=SEQ2SEQ_SPECIALS)
        targets = [t for split in ("train", "val", "test") for _, t in data.split(split)]
        longest = max(len(tgt_tok.encode(t)) for t in targets)
        config = self.make_config(args.preset or self.default_preset, model_overrides, src_tok, tgt_tok,
                                  max_target_len=int(1.25 * longest) + 5)
        model = Seq2Seq(config)
        objective = TranslationObjective({"train": data.train, "val": data.val}, src_tok, tgt_tok, seed=seed)

        def sample(trained: Seq2Seq) -> str:
            from attnlab.evaluation import translation_metrics

            translator = Translator(trained, src_tok, tgt_tok)
            pairs = data.test[:300]
            hyps = translator.translate([s for s, _ in pairs])
            metrics = translation_metrics(hyps, [t for _, t in pairs])
            lines = [f"{s}  ->  {h}" + ("" if h == t else f"   (reference: {t})")
                     for (s, t), h in list(zip(pairs, hyps))[:5]]
            lines.append(f"greedy on {len(pairs)} test pairs: exact match {metrics['exact_match']:.1%}, "
                         f"CER {metrics['cer']:.2%}, BLEU {metrics['bleu']:.1f} "
                         f"(full test split: attnlab evaluate {run_dir})")
            return "\n".join(lines)

        return Setup(
            model=model, objective=objective, train_defaults=dict(self.train_defaults),
            files={SRC_TOKENIZER_FILE: src_tok.save, TGT_TOKENIZER_FILE: tgt_tok.save},
            run_info={"task": data.name, "data_seed": DATA_SEED, "train_pairs": len(data.train),
                      "val_pairs": len(data.val), "test_pairs": len(data.test)},
            sample=sample,
        )


_TRANSLATION_DEFAULTS = dict(steps=1500, batch_size=64, lr=3e-3, warmup_steps=100, eval_every=250,
                             eval_iters=10, ckpt_every=250, weight_decay=0.01, beta2=0.99, grad_clip=1.0)

BAHDANAU_RECIPE = TranslationRecipe(
    "bahdanau", "RNN encoder-decoder with Bahdanau (additive) attention (2014), on a translation task",
    cell="gru", attention="bahdanau", train_defaults=_TRANSLATION_DEFAULTS)
SEQ2SEQ_RNN_RECIPE = TranslationRecipe(
    "seq2seq-rnn", "Elman-RNN encoder-decoder without attention (the 1980s baseline), on a translation task",
    cell="rnn", attention="none", train_defaults=_TRANSLATION_DEFAULTS)
SEQ2SEQ_GRU_RECIPE = TranslationRecipe(
    "seq2seq-gru", "GRU encoder-decoder without attention (Cho et al. 2014), on a translation task",
    cell="gru", attention="none", train_defaults=_TRANSLATION_DEFAULTS)
SEQ2SEQ_LSTM_RECIPE = TranslationRecipe(
    "seq2seq-lstm",
    "LSTM encoder-decoder without attention (1997 cells; Sutskever et al. 2014), on a translation task",
    cell="lstm", attention="none", train_defaults=_TRANSLATION_DEFAULTS)
