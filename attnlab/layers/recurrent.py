"""Fast recurrent layers: the cells of :mod:`attnlab.scratch.recurrent`, backed by ``torch.nn.RNN/LSTM/GRU``.

PyTorch runs the whole loop in C++ (cuDNN on a GPU) with the gates of a cell fused into one matrix
product per step, and the input projections of all steps done in one product up front. The maths is
the scratch cells' maths (tested equal, weights, outputs, states and gradients):

    rnn:   h_t = tanh(W h_{t-1} + U x_t + b)
    lstm:  (f, i, o, C~) from [h_{t-1}, x_t];  C_t = f * C_{t-1} + i * C~;  h_t = o * tanh(C_t)
    gru:   (r, z) from [h_{t-1}, x_t];  n = tanh(W_n x + b_n + r * (U_n h + c_n));  h_t = (1-z) n + z h_{t-1}

:class:`RecurrentLayer` adds what models need around ``torch.nn.RNN``: batch-first tensors, several
layers with dropout between them, optional bidirectionality, and padding (``lengths`` or a
right-padded ``mask``) handled by packing, so padded steps never touch the state.
:func:`copy_scratch_to_fast` and :func:`copy_fast_to_scratch` move weights between the two.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.errors import AttnlabError, require_positive_ints

State = Tensor | tuple[Tensor, Tensor]

KINDS = ("rnn", "lstm", "gru")
_TORCH_CLASSES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentLayer(nn.Module):
    """``num_layers`` stacked recurrent layers of one ``kind`` ("rnn", "lstm" or "gru").

    ``forward(x, state=None, lengths=None, mask=None) -> (outputs, state)``

    - ``x``: (batch, T, input_size); ``outputs``: (batch, T, num_directions * hidden_size).
    - ``state``: (num_layers * num_directions, batch, hidden_size), the pair ``(h, c)`` for the LSTM;
      ``None`` starts from zeros. The returned state is the one after each sequence's last real token.
    - ``lengths`` (batch,) or ``mask`` (batch, T; True = real token, padding on the right): padded
      steps are skipped (packing); their outputs are 0.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in KINDS:
            raise AttnlabError(f"unknown recurrent cell {kind!r}; choose one of {', '.join(KINDS)}")
        require_positive_ints({"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers})
        if not 0.0 <= dropout < 1.0:
            raise AttnlabError(f"dropout must be in [0, 1), got {dropout}")
        self.kind, self.input_size, self.hidden_size = kind, input_size, hidden_size
        self.num_layers, self.bidirectional = num_layers, bidirectional
        self.num_directions = 2 if bidirectional else 1
        between_layers = dropout if num_layers > 1 else 0.0  # torch warns about dropout with one layer
        self.rnn = _TORCH_CLASSES[kind](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                                        bidirectional=bidirectional, dropout=between_layers)

    @property
    def output_size(self) -> int:
        return self.num_directions * self.hidden_size

    def init_state(self, batch_size: int, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> State:
        """Zeros in the layout ``forward`` takes and returns."""
        weight = self.rnn.weight_hh_l0
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        h = torch.zeros(shape, device=device or weight.device, dtype=dtype or weight.dtype)
        return (h, torch.zeros_like(h)) if self.kind == "lstm" else h

    def forward(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None,
                mask: Tensor | None = None) -> tuple[Tensor, State]:
        if x.dim() != 3:
            raise AttnlabError(f"a recurrent layer takes (batch, T, features), got shape {tuple(x.shape)}")
        if mask is not None:
            lengths = lengths_from_mask(mask)
        if lengths is None:
            return self.rnn(x, state)
        lengths = torch.as_tensor(lengths).to("cpu", torch.long)
        if lengths.shape != (x.shape[0],) or int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
            raise AttnlabError(
                f"lengths must hold one length in 1..{x.shape[1]} per sequence (batch {x.shape[0]}), "
                f"got {lengths.tolist()}"
            )
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, state


def lengths_from_mask(mask: Tensor) -> Tensor:
    """Lengths of a right-padded (batch, T) mask (True = real token); raises if padding is not at the end."""
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    expected = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
    if not torch.equal(mask, expected):
        raise AttnlabError("a recurrent layer's padding mask must have every sequence's padding at the end")
    return lengths


def _parameter_names(layer: int, direction: int) -> tuple[str, str, str, str]:
    suffix = f"l{layer}" + ("_reverse" if direction == 1 else "")
    return tuple(f"{name}_{suffix}" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _torch_module(fast: Any) -> nn.RNNBase:
    module = fast.rnn if isinstance(fast, RecurrentLayer) else fast
    if not isinstance(module, nn.RNNBase):
        raise AttnlabError(f"expected a RecurrentLayer or torch.nn.RNN/LSTM/GRU, got {type(fast).__name__}")
    return module


def _check_same_shape(fast: nn.RNNBase, scratch: Any) -> None:
    kind = {nn.RNN: "rnn", nn.LSTM: "lstm", nn.GRU: "gru"}[type(fast)]
    ours = (scratch.kind, scratch.input_size, scratch.hidden_size, scratch.num_layers, scratch.bidirectional)
    theirs = (kind, fast.input_size, fast.hidden_size, fast.num_layers, fast.bidirectional)
    if ours != theirs or not fast.bias or getattr(fast, "proj_size", 0):
        raise AttnlabError(
            "the scratch and fast recurrent stacks differ (kind, input, hidden, layers, bidirectional): "
            f"{ours} vs {theirs}"
        )


@torch.no_grad()
def copy_scratch_to_fast(scratch: Any, fast: Any) -> None:
    """Copy the weights of a scratch :class:`attnlab.scratch.recurrent.Recurrent` into a fast layer."""
    module = _torch_module(fast)
    _check_same_shape(module, scratch)
    for layer in range(scratch.num_layers):
        for direction in range(scratch.num_directions):
            values = scratch.cell(layer, direction).torch_layout()
            for name, value in zip(_parameter_names(layer, direction), values):
                getattr(module, name).copy_(value)


@torch.no_grad()
def copy_fast_to_scratch(fast: Any, scratch: Any) -> None:
    """Copy the weights of a fast layer (or a ``torch.nn.RNN/LSTM/GRU``) into a scratch stack."""
    module = _torch_module(fast)
    _check_same_shape(module, scratch)
    for layer in range(scratch.num_layers):
        for direction in range(scratch.num_directions):
            names = _parameter_names(layer, direction)
            scratch.cell(layer, direction).load_torch_layout(*(getattr(module, n) for n in names))


def fast_parameters_by_cell(fast: Any) -> dict[tuple[int, int], tuple[Tensor, ...]]:
    """``{(layer, direction): (weight_ih, weight_hh, bias_ih, bias_hh)}`` of a fast layer (for tests)."""
    module = _torch_module(fast)
    directions = 2 if module.bidirectional else 1
    return {(layer, d): tuple(getattr(module, n) for n in _parameter_names(layer, d))
            for layer in range(module.num_layers) for d in range(directions)}
