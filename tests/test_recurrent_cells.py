"""Scratch recurrent cells (explicit loops) equal the fast torch.nn.RNN/LSTM/GRU path.

Same weights -> same outputs, final states and gradients (atol 1e-5), for multi-layer, bidirectional and
padded batches.
"""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.layers.recurrent import (
    RecurrentLayer,
    copy_fast_to_scratch,
    copy_scratch_to_fast,
    fast_parameters_by_cell,
    lengths_from_mask,
)
from attnlab.scratch.recurrent import GRUCell, LSTMCell, Recurrent, RNNCell, unroll

ATOL = 1e-5
KINDS = ["rnn", "lstm", "gru"]


def _states(state):
    return state if isinstance(state, tuple) else (state,)


def _pair(kind, input_size=5, hidden=7, layers=1, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    scratch = Recurrent(kind, input_size, hidden, num_layers=layers, bidirectional=bidirectional)
    fast = RecurrentLayer(kind, input_size, hidden, num_layers=layers, bidirectional=bidirectional)
    copy_scratch_to_fast(scratch, fast)
    return scratch, fast


def _initial_state(kind, layers, directions, batch, hidden):
    h = 0.5 * torch.randn(layers * directions, batch, hidden)
    return (h, 0.5 * torch.randn_like(h)) if kind == "lstm" else h


def _run_both(scratch, fast, x, state, lengths):
    x_s = x.clone().requires_grad_(True)
    x_f = x.clone().requires_grad_(True)
    out_s, st_s = scratch(x_s, state, lengths)
    out_f, st_f = fast(x_f, state, lengths)
    # a loss that touches every output and every final state, with different weights per element
    torch.manual_seed(99)
    w_out = torch.randn_like(out_s)
    w_st = [torch.randn_like(s) for s in _states(st_s)]
    for out, st in ((out_s, st_s), (out_f, st_f)):
        loss = (out * w_out).sum() + sum((s * w).sum() for s, w in zip(_states(st), w_st))
        loss.backward()
    return (out_s, st_s, x_s.grad), (out_f, st_f, x_f.grad)


def _assert_gradients_match(scratch, fast):
    for (layer, direction), params in fast_parameters_by_cell(fast).items():
        expected = scratch.cell(layer, direction).torch_layout(grads=True)
        for name, param, grad in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), params, expected):
            assert torch.allclose(param.grad, grad, atol=ATOL), (layer, direction, name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidirectional,padded", [
    (1, False, False), (2, False, False), (2, True, False), (1, False, True), (2, True, True),
])
def test_scratch_equals_fast(kind, layers, bidirectional, padded):
    batch, steps, hidden = 3, 6, 7
    scratch, fast = _pair(kind, hidden=hidden, layers=layers, bidirectional=bidirectional)
    torch.manual_seed(1)
    x = torch.randn(batch, steps, 5)
    directions = 2 if bidirectional else 1
    state = _initial_state(kind, layers, directions, batch, hidden)
    lengths = torch.tensor([6, 2, 4]) if padded else None
    (out_s, st_s, dx_s), (out_f, st_f, dx_f) = _run_both(scratch, fast, x, state, lengths)
    assert out_s.shape == out_f.shape == (batch, steps, directions * hidden)
    assert torch.allclose(out_s, out_f, atol=ATOL)
    for a, b in zip(_states(st_s), _states(st_f)):
        assert a.shape == b.shape == (layers * directions, batch, hidden)
        assert torch.allclose(a, b, atol=ATOL)
    assert torch.allclose(dx_s, dx_f, atol=ATOL)
    _assert_gradients_match(scratch, fast)
    if padded:  # padding gets zero output and no gradient
        assert torch.all(out_f[1, 2:] == 0) and torch.all(dx_f[1, 2:] == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_padding_equals_running_each_sequence_alone(kind):
    """A padded batch gives every sequence the same outputs and final state as running it alone."""
    scratch, fast = _pair(kind, layers=2, bidirectional=True, seed=3)
    torch.manual_seed(4)
    x = torch.randn(2, 5, 5)
    lengths = torch.tensor([5, 3])
    mask = torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)
    with torch.no_grad():
        out, state = fast(x, mask=mask)
        alone, alone_state = fast(x[1:, :3])
        alone_scratch, _ = scratch(x[1:, :3])
    assert torch.allclose(out[1:, :3], alone, atol=ATOL)
    assert torch.allclose(alone_scratch, alone, atol=ATOL)
    for a, b in zip(_states(state), _states(alone_state)):
        assert torch.allclose(a[:, 1:], b, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_fast_to_scratch_round_trip(kind):
    torch.manual_seed(5)
    fast = RecurrentLayer(kind, 4, 6, num_layers=2, bidirectional=True)
    scratch = Recurrent(kind, 4, 6, num_layers=2, bidirectional=True)
    copy_fast_to_scratch(fast, scratch)
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        assert torch.allclose(scratch(x)[0], fast(x)[0], atol=ATOL)
    back = RecurrentLayer(kind, 4, 6, num_layers=2, bidirectional=True)
    copy_scratch_to_fast(scratch, back)
    with torch.no_grad():
        assert torch.allclose(back(x)[0], fast(x)[0], atol=ATOL)


def test_rnn_cell_is_the_elman_equation():
    torch.manual_seed(0)
    cell = RNNCell(3, 4)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    expected = torch.tanh(h @ cell.W.T + x @ cell.U.T + cell.b)
    assert torch.allclose(cell(x, h), expected)


def test_lstm_cell_gates_follow_the_equations():
    torch.manual_seed(0)
    cell = LSTMCell(3, 4)
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    (h1, c1), gates = cell(x, (h, c), return_gates=True)
    hx = torch.cat([h, x], dim=-1)
    f = torch.sigmoid(hx @ cell.W_f.T + cell.b_f)
    assert torch.allclose(gates["f"], f)
    assert torch.allclose(c1, f * c + gates["i"] * gates["c_tilde"])
    assert torch.allclose(h1, gates["o"] * torch.tanh(c1))
    # a forget gate of 1 and input gate of 0 copies the cell state exactly
    with torch.no_grad():
        cell.b_f.fill_(50.0)
        cell.b_i.fill_(-50.0)
    _, c2 = cell(x, (h, c))
    assert torch.allclose(c2, c, atol=1e-6)


def test_gru_update_gate_of_one_keeps_the_state():
    torch.manual_seed(0)
    cell = GRUCell(3, 4)
    with torch.no_grad():
        cell.b_z.fill_(50.0)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    assert torch.allclose(cell(x, h), h, atol=1e-6)


def test_unroll_reverse_reads_the_sequence_backwards():
    torch.manual_seed(0)
    cell = RNNCell(2, 3)
    x = torch.randn(1, 4, 2)
    backward_out, backward_state = unroll(cell, x, reverse=True)
    forward_out, forward_state = unroll(cell, x.flip(1))
    assert torch.allclose(backward_out, forward_out.flip(1))
    assert torch.allclose(backward_state, forward_state)


def test_bad_inputs_raise_attnlab_errors():
    with pytest.raises(AttnlabError, match="unknown recurrent cell"):
        RecurrentLayer("transformer", 3, 4)
    with pytest.raises(AttnlabError, match="hidden_size"):
        RecurrentLayer("lstm", 3, 0)
    layer = RecurrentLayer("gru", 3, 4)
    with pytest.raises(AttnlabError, match="lengths"):
        layer(torch.randn(2, 3, 3), lengths=torch.tensor([0, 3]))
    with pytest.raises(AttnlabError, match="padding at the end"):
        lengths_from_mask(torch.tensor([[True, False, True]]))
    with pytest.raises(AttnlabError, match="differ"):
        copy_scratch_to_fast(Recurrent("gru", 3, 5), layer)
