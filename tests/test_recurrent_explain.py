"""``attnlab explain rnn | lstm | vanishing-gradients``."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.cli import main
from attnlab.explain import all_topics
from attnlab.explain.recurrent import distances_shown, measure_gradient_flow
from attnlab.scratch.recurrent import ElmanRNNCell, LSTMCell, unroll

SEED_INPUTS = [[0.43, 0.15, 0.89, 0.17, 0.23, 0.19, 0.38, 0.44],
               [0.55, 0.87, 0.66, 0.51, 0.49, 0.30, 0.20, 0.10],
               [0.57, 0.85, 0.64, 0.80, 0.10, 0.40, 0.21, 0.39],
               [0.22, 0.58, 0.33, 0.40, 0.40, 0.40, 0.10, 0.30],
               [0.77, 0.25, 0.10, 0.10, 0.90, 0.30, 0.30, 0.20]]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", *argv])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def by_title(steps: list[dict], start: str) -> dict:
    matches = [s for s in steps if s["title"].startswith(start)]
    assert len(matches) == 1, [s["title"] for s in steps]
    return matches[0]


def test_topics_are_registered():
    topics = all_topics()
    for name in ("rnn", "lstm", "vanishing-gradients"):
        assert name in topics and topics[name].summary


@pytest.mark.parametrize("topic,cell_class,title", [("rnn", ElmanRNNCell, "Hidden state h_t = tanh"),
                                                     ("lstm", LSTMCell, "Hidden state h_t = o_t")])
def test_walk_through_hidden_states_match_the_scratch_cell(capsys, topic, cell_class, title):
    code, out, err = run_cli(capsys, topic, "--format", "json", "--seed", "7")
    assert code == 0, err
    steps = json.loads(out)
    torch.manual_seed(7)
    cell = cell_class(8, 4)
    with torch.no_grad():
        expected, _ = unroll(cell, torch.tensor([SEED_INPUTS]))
    hidden = by_title(steps, title)
    assert hidden["rows"] == ["The", "next", "day", "is", "bright"]
    assert torch.allclose(torch.tensor(hidden["values"]), expected[0], atol=1e-6)
    influence = by_title(steps, "How much each token still matters")
    assert len(influence["values"]) == 5


def test_lstm_walk_through_shows_the_gates_and_cell_state(capsys):
    code, out, _ = run_cli(capsys, "lstm", "--format", "markdown", "--text", "friends romans countrymen")
    assert code == 0
    for heading in ("Gates f_t, i_t, o_t", "Cell state C_t = f_t * C_(t-1) + i_t * C~_t", "**f_t (forget)**",
                    "| **countrymen** |"):
        assert heading in out
    steps = json.loads(run_cli(capsys, "lstm", "--format", "json")[1])
    gates = torch.tensor(by_title(steps, "Gates")["values"])
    assert gates.shape == (3, 5, 4) and torch.all((gates > 0) & (gates < 1))


def test_vanishing_gradients_rnn_falls_with_distance_and_gpt_does_not():
    flows = measure_gradient_flow(seed=0, length=48, batch=4)
    flows = {f.name: f.norms.flip(0) for f in flows}  # indexed by distance
    rnn, lstm, gpt = flows["RNN"], flows["LSTM"], flows["GPT"]
    assert rnn.shape == (48,)
    assert rnn[1] > rnn[4] > rnn[8] > rnn[16] > rnn[32] > rnn[47]
    assert rnn[32] / rnn[1] < 1e-4
    assert lstm[32] / lstm[1] > 100 * rnn[32] / rnn[1]  # the cell state fades far more slowly
    assert 0.1 < gpt[47] / gpt[1] < 10  # attention: distance does not matter
    assert distances_shown(48) == [0, 1, 2, 4, 8, 16, 32, 47]


def test_vanishing_gradients_cli_writes_a_png_and_a_table(capsys, tmp_path):
    plot = tmp_path / "plots" / "vg.png"
    code, out, err = run_cli(capsys, "vanishing-gradients", "--out", str(plot), "--format", "json")
    assert code == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    steps = json.loads(out)
    table = steps[0]
    assert table["columns"] == ["RNN", "LSTM", "GPT"] and table["rows"][0] == "d = 0"
    rnn_log10 = [row[0] for row in table["values"]]
    assert rnn_log10[-1] < rnn_log10[1] - 5  # five orders of magnitude lost over the sequence
    assert [p.name for p in plot.parent.iterdir()] == ["vg.png"]  # no temporary file left behind


def test_vanishing_gradients_rejects_a_non_png_out(capsys, tmp_path):
    code, _, err = run_cli(capsys, "vanishing-gradients", "--out", str(tmp_path / "table.md"))
    assert code == 2 and "PNG" in err and "Traceback" not in err
