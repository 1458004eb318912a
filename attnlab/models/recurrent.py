"""Recurrent language models (the 1980s-1997 era): RNNLM, LSTMLM, GRULM.

A recurrent LM reads tokens one at a time; its state is the whole memory of the past::

    x_t      = E[token_t]                                   (token embedding)
    h_t      = Cell(h_{t-1}, x_t)                           (Elman RNN, LSTM or GRU; n_layer stacked)
    logits_t = V h_t + c                                    (y_t = softmax(V h_t + c), the seed's output)
    loss     = cross_entropy(logits_t, token_{t+1})

There is no context window: the state carries (a compressed version of) everything seen so far, so
generation costs the same for every new token (one cell step), however long the text.

Training uses truncated back-propagation through time (:class:`TBPTTObjective`): the training text is
cut into ``batch_size`` parallel streams; the batch at step ``s`` is the ``s``-th consecutive window
of ``bptt`` tokens of every stream, and each stream's final state is carried (detached) into its
next window. Gradients flow back at most ``bptt`` steps; information flows forward without limit.
The carried states are part of the trainer state, so ``--resume`` continues bit for bit. Under
torchrun each rank carries the states of its own streams; a checkpoint merges every rank's, so a run
resumes with any number of ranks (tested: 2 ranks, then 1 process).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.checkpoint import Savable, config_from_preset
from attnlab.errors import AttnlabError, require_positive_fields
from attnlab.layers.recurrent import RecurrentLayer
from attnlab.training.recipes import LanguageModelRecipe

State = Tensor | tuple[Tensor, Tensor]

__all__ = ["RecurrentLMConfig", "RNNLMConfig", "LSTMLMConfig", "GRULMConfig", "RecurrentLM", "RNNLM",
           "LSTMLM", "GRULM", "PRESETS", "TBPTTObjective", "detach_state", "RNN_RECIPE", "LSTM_RECIPE",
           "GRU_RECIPE"]


@dataclass
class RecurrentLMConfig:
    """The shape of a recurrent language model (the cell is fixed by the model class)."""

    vocab_size: int = 256
    n_embd: int = 128  # token embedding width (input of the first layer)
    hidden_size: int = 256  # state width of every layer
    n_layer: int = 2
    dropout: float = 0.0  # on the embeddings, between layers and before the head
    bptt: int = 128  # tokens per training window (truncated BPTT); generation has no length limit
    tie_weights: bool = False  # the head reuses the embedding matrix (needs hidden_size == n_embd)

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_positive_fields(self, ("vocab_size", "n_embd", "hidden_size", "n_layer", "bptt"))
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise AttnlabError(f"{name}.dropout must be in [0, 1), got {self.dropout!r}")
        if self.tie_weights and self.hidden_size != self.n_embd:
            raise AttnlabError(
                f"{name}: tie_weights needs hidden_size == n_embd (got {self.hidden_size} and "
                f"{self.n_embd}); set both to the same width or --set tie_weights=false"
            )


@dataclass
class RNNLMConfig(RecurrentLMConfig):
    """An Elman RNN language model."""


@dataclass
class LSTMLMConfig(RecurrentLMConfig):
    """An LSTM language model. ``forget_bias`` starts the forget gates open (sigma(1) ~ 0.73), a standard
    trick (Gers et al. 2000; Jozefowicz et al. 2015) that lets gradients through from the first step."""

    forget_bias: float = 1.0


@dataclass
class GRULMConfig(RecurrentLMConfig):
    """A GRU language model."""


PRESETS: dict[str, dict[str, Any]] = {
    # a few seconds on a laptop: for tests and smoke runs
    "tiny": dict(n_embd=32, hidden_size=64, n_layer=1, bptt=32),
    "small": dict(n_embd=64, hidden_size=128, n_layer=1, bptt=64),
    # the default of `attnlab train rnn|lstm|gru`: 2 layers of width 256 (the comparison with gpt-jc)
    "jc": dict(n_embd=128, hidden_size=256, n_layer=2, bptt=128, dropout=0.1),
    "large": dict(n_embd=256, hidden_size=512, n_layer=3, bptt=128, dropout=0.2),
}


def detach_state(state: State | None) -> State | None:
    """Cut the graph behind a state (truncated BPTT keeps the values, drops the history)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


class RecurrentLM(Savable, nn.Module):
    """Embedding -> stacked recurrent layers -> linear head. Subclasses fix ``cell``."""

    model_type: ClassVar[str]
    config_class: ClassVar[type]
    cell: ClassVar[str]

    def __init__(self, config: RecurrentLMConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise AttnlabError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                               f"got {type(config).__name__}")
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = RecurrentLayer(self.cell, c.n_embd, c.hidden_size, num_layers=c.n_layer, dropout=c.dropout)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size)
        self.reset_parameters()
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight

    def reset_parameters(self) -> None:
        """Embeddings and head ~ U(-0.1, 0.1), head bias 0; recurrent weights keep U(+-1/sqrt(H))."""
        nn.init.uniform_(self.tok_emb.weight, -0.1, 0.1)
        nn.init.uniform_(self.lm_head.weight, -0.1, 0.1)
        nn.init.zeros_(self.lm_head.bias)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch_size: int) -> State:
        """The zero state: (n_layer, batch, hidden), a pair ``(h, c)`` for the LSTM."""
        return self.rnn.init_state(batch_size)

    def logits_from_embeddings(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the recurrent stack and the head on already-embedded inputs ``x`` (B, T, n_embd)."""
        out, state = self.rnn(self.drop(x), state)
        return self.lm_head(self.drop(out)), state

    def forward(self, idx: Tensor, state: State | None = None, *, return_state: bool = False
                ) -> Tensor | tuple[Tensor, State]:
        """``idx`` (B, T) token ids -> logits (B, T, vocab); with ``return_state`` also the final state.

        ``state`` (from :meth:`init_state` or a previous call) continues a sequence; ``None`` starts afresh.
        """
        if idx.dim() != 2:
            raise AttnlabError(f"expected token ids of shape (batch, T), got {tuple(idx.shape)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            raise AttnlabError(f"token ids must be in 0..{self.config.vocab_size - 1}")
        logits, state = self.logits_from_embeddings(self.tok_emb(idx), state)
        return (logits, state) if return_state else logits

    def loss(self, idx: Tensor, targets: Tensor, state: State | None = None) -> Tensor:
        """Mean next-token cross-entropy from ``state`` (zeros if None); targets of -1 are ignored."""
        logits = self(idx, state)
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=-1)

    # ---- generation (the protocol of attnlab.inference.sampling) ------------------------------
    def start_generation(self) -> State | None:
        return None

    def generation_step(self, ids: Tensor, state: State | None) -> tuple[Tensor, State]:
        """Feed ``ids`` (B, T) after ``state``; returns logits (B, T, vocab) and the new state.

        Each token costs one cell step whatever came before: the state is the whole memory.
        """
        return self(ids, state, return_state=True)

    # ---- persistence --------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> RecurrentLM:
        return cls(config_from_preset(cls.config_class, PRESETS, name, cls.__name__, overrides))

    def with_config(self, **changes: Any) -> RecurrentLMConfig:
        return dataclasses.replace(self.config, **changes)


class RNNLM(RecurrentLM):
    """Elman RNN language model: ``h_t = tanh(W h_{t-1} + U x_t + b)``, ``y_t = softmax(V h_t + c)``."""

    model_type = "rnn_lm"
    config_class = RNNLMConfig
    cell = "rnn"


class LSTMLM(RecurrentLM):
    """LSTM language model: gates decide what the cell state forgets, writes and shows."""

    model_type = "lstm_lm"
    config_class = LSTMLMConfig
    cell = "lstm"

    def reset_parameters(self) -> None:
        super().reset_parameters()
        h = self.config.hidden_size
        with torch.no_grad():  # PyTorch's gate order is i, f, g, o; the two biases add up
            for layer in range(self.config.n_layer):
                getattr(self.rnn.rnn, f"bias_ih_l{layer}")[h : 2 * h].fill_(self.config.forget_bias)
                getattr(self.rnn.rnn, f"bias_hh_l{layer}")[h : 2 * h].zero_()


class GRULM(RecurrentLM):
    """GRU language model: an update gate interpolates between the old state and a candidate."""

    model_type = "gru_lm"
    config_class = GRULMConfig
    cell = "gru"


# ------------------------------------------------------------------------------------------------
# Truncated back-propagation through time
# ------------------------------------------------------------------------------------------------

SPLIT_CODES = {"train": 1, "val": 2, "test": 3}


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a torch.compile and/or DistributedDataParallel wrapper."""
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


class _Streams:
    """One split's token ids laid out as ``batch_size`` contiguous streams cut into windows."""

    def __init__(self, ids: Tensor, batch_size: int, bptt: int, split: str) -> None:
        length = len(ids) // batch_size
        self.windows = (length - 1) // bptt
        if self.windows < 1:
            raise AttnlabError(
                f"the {split} split has {len(ids)} tokens: too few for {batch_size} parallel streams of at "
                f"least {bptt} + 1 tokens each; use a longer text, a smaller --batch-size or --set bptt=N"
            )
        self.bptt = bptt
        self.batch_size = batch_size
        self.starts = torch.arange(batch_size) * length
        self.ids = ids

    def window(self, index: int) -> tuple[Tensor, Tensor, int]:
        w = index % self.windows
        offsets = self.starts.unsqueeze(1) + w * self.bptt + torch.arange(self.bptt + 1).unsqueeze(0)
        tokens = self.ids[offsets]
        return tokens[:, :-1], tokens[:, 1:], w


class TBPTTObjective:
    """Next-token prediction with state carried across consecutive windows of parallel streams.

    ``batch(split, step, batch_size)`` returns ``x``, ``y`` (B, bptt) plus ``stream`` (which of the B
    streams each row is), ``window`` (which window of its stream) and ``split`` (a code), so that
    :meth:`loss` still finds each row's state after the trainer slices the batch for gradient
    accumulation or data parallelism. A training batch at step ``s`` is window ``s mod W`` of every
    stream (W windows per stream per epoch); evaluation batch ``-1 - i`` is window ``i mod W`` of the
    validation streams. A row starts from zeros at window 0, or when its stored state is not the
    one of the window just before (e.g. a first batch after a change of batch size).
    """

    def __init__(self, train_ids: Tensor, val_ids: Tensor, bptt: int, seed: int = 0) -> None:
        self.data = {"train": train_ids.long(), "val": val_ids.long()}
        self.bptt = bptt
        self.seed = seed  # batches are a pure function of (split, step): the seed is not needed
        self._streams: dict[str, _Streams] = {}
        self._state: dict[str, dict[str, Tensor]] = {}  # split -> {"h", ["c"], "next_window"}
        self._pending: dict[str, Tensor] = {}  # train state loaded before the first batch

    # ---- batches -------------------------------------------------------------------------------
    def streams(self, split: str, batch_size: int) -> _Streams:
        current = self._streams.get(split)
        if current is None or current.batch_size != batch_size:
            current = self._streams[split] = _Streams(self.data[split], batch_size, self.bptt, split)
        return current

    def batch(self, split: str, step: int, batch_size: int) -> dict[str, Tensor]:
        streams = self.streams(split, batch_size)
        index = step if step >= 0 else -1 - step
        x, y, w = streams.window(index)
        return {"x": x, "y": y, "stream": torch.arange(batch_size), "window": torch.full((batch_size,), w),
                "split": torch.full((batch_size,), SPLIT_CODES[split])}

    def count_tokens(self, batch: dict[str, Tensor]) -> int:
        return batch["x"].numel()

    # ---- carried state --------------------------------------------------------------------------
    def _store(self, split: str, model: nn.Module, streams: int, device: torch.device) -> dict[str, Tensor]:
        store = self._state.get(split)
        if store is None or store["h"].shape[1] != streams or store["h"].device != device:
            zero = unwrap(model).init_state(streams)
            zeros = zero if isinstance(zero, tuple) else (zero,)
            store = {name: z.to(device) for name, z in zip(("h", "c"), zeros)}
            store["next_window"] = torch.full((streams,), -1, dtype=torch.long, device=device)
            if split == "train" and self._pending:
                pending = self._pending
                if all(k in pending and pending[k].shape == store[k].shape for k in store):
                    store = {k: pending[k].to(device) for k in store}
                self._pending = {}
            self._state[split] = store
        return store

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        x, y = batch["x"], batch["y"]
        split = next(name for name, code in SPLIT_CODES.items() if code == int(batch["split"][0]))
        if split not in self._streams:
            raise AttnlabError("TBPTTObjective.loss needs a batch made by TBPTTObjective.batch")
        streams = self._streams[split]
        store = self._store(split, model, streams.batch_size, x.device)
        rows = batch["stream"].to(x.device)
        window = batch["window"].to(x.device)
        carry = (store["next_window"][rows] == window) & (window > 0)
        keep = carry.view(1, -1, 1).to(store["h"].dtype)
        names = ("h", "c") if "c" in store else ("h",)
        start = tuple(store[n][:, rows] * keep for n in names)
        state = start if len(start) == 2 else start[0]
        logits, final = model(x, state, return_state=True)
        finals = final if isinstance(final, tuple) else (final,)
        with torch.no_grad():
            for name, value in zip(names, finals):
                store[name][:, rows] = value.detach().to(store[name].dtype)
            store["next_window"][rows] = (window + 1) % streams.windows
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))

    # the stream (batch row) dimension of each state tensor: a rank updates only its own rows
    state_batch_dims = {"h": 1, "c": 1, "next_window": 0}

    def state_tensors(self) -> dict[str, Tensor]:
        """The training streams' carried states (for an exact resume)."""
        store = self._state.get("train")
        if store is None:
            return {k: v.clone() for k, v in self._pending.items()}
        return {k: v.detach().cpu().clone() for k, v in store.items()}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        self._state.pop("train", None)
        self._pending = {k: v.clone() for k, v in tensors.items()}


# ------------------------------------------------------------------------------------------------
# Recipes: `attnlab train rnn|lstm|gru`
# ------------------------------------------------------------------------------------------------


class RecurrentLMRecipe(LanguageModelRecipe):
    """The GPT recipe's data and options, with the truncated-BPTT objective."""

    def make_objective(self, model: Any, train_ids: Any, val_ids: Any, context: int, seed: int) -> Any:
        return TBPTTObjective(train_ids, val_ids, model.config.bptt, seed=seed)


_TRAIN_DEFAULTS = dict(steps=2000, batch_size=16, lr=2e-3, warmup_steps=50, eval_every=250, eval_iters=20,
                       ckpt_every=250, beta2=0.99, weight_decay=0.01, grad_clip=1.0)

RNN_RECIPE = RecurrentLMRecipe(
    name="rnn", help="an Elman RNN language model (1990) on a text corpus, trained with truncated BPTT",
    model_class_path="attnlab.models.recurrent:RNNLM", presets_path="attnlab.models.recurrent:PRESETS",
    default_preset="jc", train_defaults=dict(_TRAIN_DEFAULTS, lr=1e-3),
)
LSTM_RECIPE = RecurrentLMRecipe(
    name="lstm", help="an LSTM language model (1997) on a text corpus, trained with truncated BPTT",
    model_class_path="attnlab.models.recurrent:LSTMLM", presets_path="attnlab.models.recurrent:PRESETS",
    default_preset="jc", train_defaults=dict(_TRAIN_DEFAULTS),
)
GRU_RECIPE = RecurrentLMRecipe(
    name="gru", help="a GRU language model (2014) on a text corpus, trained with truncated BPTT",
    model_class_path="attnlab.models.recurrent:GRULM", presets_path="attnlab.models.recurrent:PRESETS",
    default_preset="jc", train_defaults=dict(_TRAIN_DEFAULTS),
)
