"""Recurrent cells written from their equations, and an explicit loop that unrolls them.

The recurrent era, before attention: read a sequence one token at a time and fold everything seen
so far into a fixed-size state. The last hidden state "carries the compressed past".

Three cells, each a few lines of tensor maths (``x_t`` is ``(batch, input_size)``, states are
``(batch, hidden_size)``, ``[a, b]`` is concatenation along the features, ``*`` is elementwise):

- :class:`ElmanRNNCell` (Elman, 1990)::

      h_t = tanh(W h_{t-1} + U x_t + b)

- :class:`LSTMCell` (Hochreiter & Schmidhuber, 1997; forget gate: Gers et al., 2000)::

      f_t  = sigma(W_f [h_{t-1}, x_t] + b_f)        forget gate: how much of C_{t-1} to keep
      i_t  = sigma(W_i [h_{t-1}, x_t] + b_i)        input gate: how much of the candidate to write
      o_t  = sigma(W_o [h_{t-1}, x_t] + b_o)        output gate: how much of the cell to show
      C~_t = tanh(W_c [h_{t-1}, x_t] + b_c)         candidate cell content
      C_t  = f_t * C_{t-1} + i_t * C~_t              the cell state: an additive path through time
      h_t  = o_t * tanh(C_t)

- :class:`GRUCell` (Cho et al., 2014), in the form cuDNN and ``torch.nn.GRU`` compute, where the
  reset gate multiplies the hidden part of the candidate *after* its matrix product::

      r_t  = sigma(W_r [h_{t-1}, x_t] + b_r)        reset gate
      z_t  = sigma(W_z [h_{t-1}, x_t] + b_z)        update gate
      n_t  = tanh(W_n x_t + b_n + r_t * (U_n h_{t-1} + c_n))
      h_t  = (1 - z_t) * n_t + z_t * h_{t-1}

Why the LSTM helps: backpropagating through the RNN multiplies by ``W^T diag(1 - h^2)`` at every
step (``dL/dh_{t-1} = W^T (dL/dh_t * (1 - h_t^2))``), so when the largest singular value of ``W`` is
below 1 the gradient shrinks geometrically with distance. The LSTM's cell state is updated by
addition, ``dC_t/dC_{t-1} = f_t``: with forget gates near 1 the gradient passes almost unchanged.

:func:`unroll` runs any cell over a ``(batch, T, input_size)`` sequence with a plain Python loop
(forwards or backwards, optionally ignoring padding after each sequence's length), and
:class:`Recurrent` stacks unrolled cells into layers, optionally bidirectional, with dropout between
layers. Its state has the same layout as ``torch.nn.RNN / LSTM / GRU``:
``(num_layers * num_directions, batch, hidden)`` (a pair ``(h, c)`` for the LSTM).

Weights are kept as the equations name them. ``torch_layout()`` / ``load_torch_layout()`` convert
a cell to and from PyTorch's packed ``weight_ih, weight_hh, bias_ih, bias_hh`` (gate order i, f, g, o
for the LSTM; r, z, n for the GRU), which is how :mod:`attnlab.layers.recurrent` copies weights
between this teaching code and the fast path.

This package is for reading; the models train with the fused versions in :mod:`attnlab.layers`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError

__all__ = ["ElmanRNNCell", "RNNCell", "LSTMCell", "GRUCell", "CELLS", "unroll", "Recurrent", "ElmanRNN",
           "LSTM", "GRU"]

State = Tensor | tuple[Tensor, Tensor]


def _uniform_(hidden_size: int, *params: Tensor) -> None:
    """PyTorch's recurrent initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in params:
            p.uniform_(-bound, bound)


def _check_sizes(input_size: int, hidden_size: int) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise AttnlabError(f"{name} must be a positive integer, got {value!r}")


class ElmanRNNCell(nn.Module):
    """One step of the Elman RNN::

        h_t = tanh(W h_{t-1} + U x_t + b)

    ``W`` is ``(hidden, hidden)``, ``U`` is ``(hidden, input)``, ``b`` is ``(hidden,)``. The state is
    ``h`` alone. (PyTorch keeps two biases, ``b_ih + b_hh``; their sum plays the part of ``b``.)
    """

    kind = "rnn"
    gates = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.U = nn.Parameter(torch.empty(hidden_size, input_size))
        self.b = nn.Parameter(torch.empty(hidden_size))
        _uniform_(hidden_size, *self.parameters())

    def init_state(self, batch_size: int, like: Tensor | None = None) -> Tensor:
        return _zeros(batch_size, self.hidden_size, like)

    @staticmethod
    def output(state: Tensor) -> Tensor:
        """The part of the state the next layer sees: ``h``."""
        return state

    def forward(self, x_t: Tensor, h_prev: Tensor | None = None) -> Tensor:
        if h_prev is None:
            h_prev = self.init_state(x_t.shape[0], x_t)
        return torch.tanh(h_prev @ self.W.T + x_t @ self.U.T + self.b)

    def torch_layout(self, grads: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` as ``torch.nn.RNN`` stores them.

        With ``grads=True``, the same layout for the gradients (``b``'s gradient is the gradient of
        both PyTorch biases, since only their sum enters the equation).
        """
        U, W, b = _values(grads, self.U, self.W, self.b)
        return U, W, b, (b if grads else torch.zeros_like(b))

    @torch.no_grad()
    def load_torch_layout(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor,
                          bias_hh: Tensor) -> None:
        self.U.copy_(weight_ih)
        self.W.copy_(weight_hh)
        self.b.copy_(bias_ih + bias_hh)


RNNCell = ElmanRNNCell


class LSTMCell(nn.Module):
    """One step of the LSTM; the state is the pair ``(h, C)``::

        f_t  = sigma(W_f [h_{t-1}, x_t] + b_f)
        i_t  = sigma(W_i [h_{t-1}, x_t] + b_i)
        o_t  = sigma(W_o [h_{t-1}, x_t] + b_o)
        C~_t = tanh(W_c [h_{t-1}, x_t] + b_c)
        C_t  = f_t * C_{t-1} + i_t * C~_t
        h_t  = o_t * tanh(C_t)

    Each ``W_*`` is ``(hidden, hidden + input)``: the columns for ``h_{t-1}`` come first.
    ``forward(..., return_gates=True)`` also returns the gate values (for walk-throughs).
    """

    kind = "lstm"
    gates = 4

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        width = hidden_size + input_size
        self.W_f = nn.Parameter(torch.empty(hidden_size, width))
        self.W_i = nn.Parameter(torch.empty(hidden_size, width))
        self.W_o = nn.Parameter(torch.empty(hidden_size, width))
        self.W_c = nn.Parameter(torch.empty(hidden_size, width))
        self.b_f = nn.Parameter(torch.empty(hidden_size))
        self.b_i = nn.Parameter(torch.empty(hidden_size))
        self.b_o = nn.Parameter(torch.empty(hidden_size))
        self.b_c = nn.Parameter(torch.empty(hidden_size))
        _uniform_(hidden_size, *self.parameters())

    def init_state(self, batch_size: int, like: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _zeros(batch_size, self.hidden_size, like), _zeros(batch_size, self.hidden_size, like)

    @staticmethod
    def output(state: tuple[Tensor, Tensor]) -> Tensor:
        return state[0]

    def forward(self, x_t: Tensor, state: tuple[Tensor, Tensor] | None = None, return_gates: bool = False):
        if state is None:
            state = self.init_state(x_t.shape[0], x_t)
        h_prev, c_prev = state
        hx = torch.cat([h_prev, x_t], dim=-1)
        f = torch.sigmoid(hx @ self.W_f.T + self.b_f)
        i = torch.sigmoid(hx @ self.W_i.T + self.b_i)
        o = torch.sigmoid(hx @ self.W_o.T + self.b_o)
        c_tilde = torch.tanh(hx @ self.W_c.T + self.b_c)
        c = f * c_prev + i * c_tilde
        h = o * torch.tanh(c)
        if return_gates:
            return (h, c), {"f": f, "i": i, "o": o, "c_tilde": c_tilde}
        return h, c

    def _blocks(self) -> list[tuple[Tensor, Tensor]]:
        """The gates in PyTorch's order (i, f, g, o), each as (weight, bias)."""
        return [(self.W_i, self.b_i), (self.W_f, self.b_f), (self.W_c, self.b_c), (self.W_o, self.b_o)]

    def torch_layout(self, grads: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` as ``torch.nn.LSTM`` keeps them (or the gradients)."""
        h = self.hidden_size
        weights = torch.cat(_values(grads, *(w for w, _ in self._blocks())))
        bias = torch.cat(_values(grads, *(b for _, b in self._blocks())))
        return weights[:, h:], weights[:, :h], bias, (bias if grads else torch.zeros_like(bias))

    @torch.no_grad()
    def load_torch_layout(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor,
                          bias_hh: Tensor) -> None:
        h = self.hidden_size
        for k, (w, b) in enumerate(self._blocks()):
            rows = slice(k * h, (k + 1) * h)
            w.copy_(torch.cat([weight_hh[rows], weight_ih[rows]], dim=1))
            b.copy_(bias_ih[rows] + bias_hh[rows])


class GRUCell(nn.Module):
    """One step of the GRU (the cuDNN / ``torch.nn.GRU`` form); the state is ``h``::

        r_t = sigma(W_r [h_{t-1}, x_t] + b_r)
        z_t = sigma(W_z [h_{t-1}, x_t] + b_z)
        n_t = tanh(W_n x_t + b_n + r_t * (U_n h_{t-1} + c_n))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    The update gate ``z`` interpolates between keeping the old state and writing the candidate:
    like the LSTM's forget gate, ``z_t`` near 1 lets the state (and its gradient) pass through.
    """

    kind = "gru"
    gates = 3

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        width = hidden_size + input_size
        self.W_r = nn.Parameter(torch.empty(hidden_size, width))
        self.W_z = nn.Parameter(torch.empty(hidden_size, width))
        self.W_n = nn.Parameter(torch.empty(hidden_size, input_size))
        self.U_n = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b_r = nn.Parameter(torch.empty(hidden_size))
        self.b_z = nn.Parameter(torch.empty(hidden_size))
        self.b_n = nn.Parameter(torch.empty(hidden_size))
        self.c_n = nn.Parameter(torch.empty(hidden_size))
        _uniform_(hidden_size, *self.parameters())

    def init_state(self, batch_size: int, like: Tensor | None = None) -> Tensor:
        return _zeros(batch_size, self.hidden_size, like)

    @staticmethod
    def output(state: Tensor) -> Tensor:
        return state

    def forward(self, x_t: Tensor, h_prev: Tensor | None = None) -> Tensor:
        if h_prev is None:
            h_prev = self.init_state(x_t.shape[0], x_t)
        hx = torch.cat([h_prev, x_t], dim=-1)
        r = torch.sigmoid(hx @ self.W_r.T + self.b_r)
        z = torch.sigmoid(hx @ self.W_z.T + self.b_z)
        n = torch.tanh(x_t @ self.W_n.T + self.b_n + r * (h_prev @ self.U_n.T + self.c_n))
        return (1 - z) * n + z * h_prev

    def torch_layout(self, grads: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` as ``torch.nn.GRU`` stores them (or the gradients)."""
        h = self.hidden_size
        w_r, w_z, w_n, u_n, b_r, b_z, b_n, c_n = _values(
            grads, self.W_r, self.W_z, self.W_n, self.U_n, self.b_r, self.b_z, self.b_n, self.c_n)
        weight_ih = torch.cat([w_r[:, h:], w_z[:, h:], w_n])
        weight_hh = torch.cat([w_r[:, :h], w_z[:, :h], u_n])
        bias_ih = torch.cat([b_r, b_z, b_n])
        if grads:
            bias_hh = torch.cat([b_r, b_z, c_n])
        else:
            bias_hh = torch.cat([torch.zeros_like(b_r), torch.zeros_like(b_z), c_n])
        return weight_ih, weight_hh, bias_ih, bias_hh

    @torch.no_grad()
    def load_torch_layout(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor,
                          bias_hh: Tensor) -> None:
        h = self.hidden_size
        r, z, n = slice(0, h), slice(h, 2 * h), slice(2 * h, 3 * h)
        self.W_r.copy_(torch.cat([weight_hh[r], weight_ih[r]], dim=1))
        self.W_z.copy_(torch.cat([weight_hh[z], weight_ih[z]], dim=1))
        self.b_r.copy_(bias_ih[r] + bias_hh[r])
        self.b_z.copy_(bias_ih[z] + bias_hh[z])
        self.W_n.copy_(weight_ih[n])
        self.U_n.copy_(weight_hh[n])
        self.b_n.copy_(bias_ih[n])
        self.c_n.copy_(bias_hh[n])


CELLS: dict[str, type[nn.Module]] = {"rnn": ElmanRNNCell, "lstm": LSTMCell, "gru": GRUCell}


def _values(grads: bool, *params: Tensor) -> list[Tensor]:
    """The parameters (detached), or their gradients (zeros where a parameter got none)."""
    if not grads:
        return [p.detach() for p in params]
    return [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for p in params]


def _zeros(batch_size: int, hidden_size: int, like: Tensor | None) -> Tensor:
    if like is None:
        return torch.zeros(batch_size, hidden_size)
    return like.new_zeros(batch_size, hidden_size)


def _keep(valid: Tensor, new: State, old: State) -> State:
    """``new`` where ``valid`` (a (batch, 1) mask), else ``old``: padding never changes the state."""
    if isinstance(new, tuple):
        return tuple(torch.where(valid, n, o) for n, o in zip(new, old))
    return torch.where(valid, new, old)


def unroll(cell: nn.Module, x: Tensor, state: State | None = None, lengths: Tensor | None = None,
           reverse: bool = False) -> tuple[Tensor, State]:
    """Run ``cell`` over ``x`` (batch, T, input_size), one step at a time.

    Returns ``(outputs, final_state)``: ``outputs[:, t]`` is ``h_t`` (batch, T, hidden). With
    ``lengths`` (batch,), steps ``t >= lengths[b]`` of sequence ``b`` are padding: they leave the
    state unchanged and their output is 0, so the final state is the one after the last real token.
    With ``reverse=True`` the sequence is read from its last real token back to the first.
    """
    batch, steps, _ = x.shape
    if state is None:
        state = cell.init_state(batch, x)
    outputs: list[Tensor] = [x.new_zeros(0)] * steps
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        new_state = cell(x[:, t], state)
        if lengths is not None:
            valid = (t < lengths).to(x.device).unsqueeze(1)
            state = _keep(valid, new_state, state)
            outputs[t] = cell.output(state) * valid
        else:
            state = new_state
            outputs[t] = cell.output(state)
    return torch.stack(outputs, dim=1), state


class Recurrent(nn.Module):
    """A stack of unrolled cells: ``num_layers`` layers, each optionally bidirectional.

    Layer ``l`` reads the outputs of layer ``l - 1`` (forward and backward outputs concatenated when
    bidirectional), with dropout between layers (not after the last one), as ``torch.nn.LSTM`` does.
    ``forward(x, state=None, lengths=None) -> (outputs, state)``: ``x`` is (batch, T, input_size),
    outputs are (batch, T, num_directions * hidden), the state is (num_layers * num_directions,
    batch, hidden), a pair ``(h, c)`` for the LSTM; index ``l * num_directions + d``.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in CELLS:
            raise AttnlabError(f"unknown recurrent cell {kind!r}; choose one of {', '.join(CELLS)}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise AttnlabError(f"num_layers must be a positive integer, got {num_layers!r}")
        self.kind, self.hidden_size, self.num_layers = kind, hidden_size, num_layers
        self.input_size = input_size
        self.num_directions = 2 if bidirectional else 1
        self.bidirectional = bidirectional
        self.dropout = nn.Dropout(dropout)
        cell_class = CELLS[kind]
        self.cells = nn.ModuleList()
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for _ in range(self.num_directions):
                self.cells.append(cell_class(layer_input, hidden_size))

    def cell(self, layer: int, direction: int = 0) -> nn.Module:
        return self.cells[layer * self.num_directions + direction]

    def forward(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
                ) -> tuple[Tensor, State]:
        finals: list[State] = []
        layer_input = x
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = self.dropout(layer_input)
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                start = None
                if state is not None:
                    start = tuple(s[index] for s in state) if isinstance(state, tuple) else state[index]
                out, final = unroll(self.cells[index], layer_input, start, lengths, reverse=direction == 1)
                outputs.append(out)
                finals.append(final)
            layer_input = torch.cat(outputs, dim=-1)
        if isinstance(finals[0], tuple):
            final_state: State = (torch.stack([f[0] for f in finals]), torch.stack([f[1] for f in finals]))
        else:
            final_state = torch.stack(finals)
        return layer_input, final_state


class ElmanRNN(Recurrent):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__("rnn", input_size, hidden_size, num_layers, bidirectional, dropout)


class LSTM(Recurrent):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__("lstm", input_size, hidden_size, num_layers, bidirectional, dropout)


class GRU(Recurrent):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__("gru", input_size, hidden_size, num_layers, bidirectional, dropout)
