"""Recurrent language models (the 1980s-1997 era): RNNLM, LSTMLM, GRULM.

A recurrent LM reads tokens one at a time; its state is the whole memory of the past::

    x_t      = E[token_t]                                   (token embedding)
    h_t      = Cell(h_{t-1}, x_t)                           (Elman RNN, LSTM or GRU; n_layer stacked)
    logits_t = V h_t + c                                    (y_t = softmax(V h_t + c), the attention overview's output)
    loss     = cross_entropy(logits_t, token_{t+1})

There is no context window: the state carries (a compressed version of) everything seen so far, so
generation costs the same for every new token (one cell step), however long the text.

Training uses truncated back-propagation through time over windows of ``context_length`` tokens
(:mod:`attnlab.recipes.tbptt`).
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

State = Tensor | tuple[Tensor, Tensor]

__all__ = ["RecurrentLMConfig", "RNNLMConfig", "LSTMLMConfig", "GRULMConfig", "RecurrentLM", "RNNLM",
           "LSTMLM", "GRULM", "PRESETS", "detach_state"]


@dataclass
class RecurrentLMConfig:
    """The shape of a recurrent language model (the cell is fixed by the model class)."""

    renamed_fields: ClassVar[dict[str, str | None]] = {"bptt": "context_length"}  # before attnlab 0.2

    vocab_size: int = 256
    n_embd: int = 128  # token embedding width (input of the first layer)
    hidden_size: int = 256  # state width of every layer
    n_layer: int = 2
    dropout: float = 0.0  # on the embeddings, between layers and before the head
    context_length: int = 128  # tokens per training window (truncated BPTT); generation has no length limit
    tie_weights: bool = False  # the head reuses the embedding matrix (needs hidden_size == n_embd)

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_positive_fields(self, ("vocab_size", "n_embd", "hidden_size", "n_layer", "context_length"))
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
    "tiny": dict(n_embd=32, hidden_size=64, n_layer=1, context_length=32),
    "small": dict(n_embd=64, hidden_size=128, n_layer=1, context_length=64),
    # the default of `attnlab train rnn|lstm|gru`: 2 layers of width 256 (compared with the GPT in BENCHMARKS.md)
    "jc": dict(n_embd=128, hidden_size=256, n_layer=2, context_length=128, dropout=0.1),
    "large": dict(n_embd=256, hidden_size=512, n_layer=3, context_length=128, dropout=0.2),
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

    # ---- generation stream (the protocol of attnlab.inference.sampling) ------------------------
    stream_context = None  # no window: the state carries the whole past, a prompt of any length fits

    def start_stream(self, use_cache: bool = True) -> dict[str, Any]:
        """Without the cache every step re-reads the whole history from a zero state (for tests)."""
        return {"use_cache": use_cache, "state": None, "history": []}

    def stream_step(self, ids: list[int], stream: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Append ``ids``; returns the next-token logits (vocab,) and the stream."""
        device = next(self.parameters()).device
        stream["history"].extend(ids)
        if stream["use_cache"]:
            logits, stream["state"] = self(torch.tensor([ids], device=device), stream["state"], return_state=True)
        else:
            logits = self(torch.tensor([stream["history"]], device=device))
        return logits[0, -1], stream

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
