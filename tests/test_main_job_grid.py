"""benchmarks/main_job_grid.py: equal-CPU-cost step counts, the streamed log, the summary table."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture()
def grid(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("main_job_grid")


def test_every_candidate_has_a_shape_with_a_measured_cost(grid):
    costs = json.loads(grid.COST_FILE.read_text())["ms_per_step"]
    for name, (arch, _flags) in grid.candidates().items():
        assert arch in grid.ARCHS, name
        assert costs[arch] > 0, name
    assert list(grid.candidates())[: len(grid.FIRST)] == list(grid.FIRST)
    assert "julius-caesar" not in grid.PLAYS  # the protocol: choose elsewhere, report there


def test_steps_give_every_shape_the_defaults_cpu_time_and_the_log_keeps_errors(grid, monkeypatch, tmp_path):
    seen = []

    def fake_train(flags, out, threads, device):
        seen.append(flags)
        if "broken" in str(out.parent) and "two-gentlemen-of-verona" in flags:
            raise RuntimeError("attnlab train gpt failed: boom")
        steps = int(flags[flags.index("--steps") + 1])
        rows = [{"step": s, "loss": 2.0} for s in range(1, steps + 1)]
        return [*rows, {"step": steps, "val_loss": 1.5 + steps / 1e5}]

    monkeypatch.setattr(grid, "run_train", fake_train)
    costs = {arch: 50.0 for arch in grid.ARCHS} | {"default": 60.0, "2 layers": 40.0}
    log = tmp_path / "grid.jsonl"
    grid.grid(["macbeth", "twelfth-night"], costs, "cpu", 2, 1e9, log, {"default", "2 layers"}, budget_steps=100)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    steps = {r["name"]: r["steps"] for r in rows}
    assert steps == {"default": 100, "2 layers": 150}  # 100 x 60 / 40
    assert all(r["device"] == "cpu" and r["val_loss"] > 1.5 for r in rows)
    assert sum(flags[:2] == grid.ARCHS["2 layers"] for flags in seen) == 2
    table = grid.summary(log).splitlines()  # best (lowest mean) first; each row against the default
    assert table[2] == "| default | 100 | 1.5010 | 1.5010 | 1.5010 | +0.0000 |"
    assert table[3] == "| 2 layers | 150 | 1.5015 | 1.5015 | 1.5015 | +0.0005 |"

    # a run that fails is logged as an error, and the others still finish
    monkeypatch.setattr(grid.tempfile, "TemporaryDirectory", lambda: _Dir(tmp_path / "broken"))
    grid.grid(["two-gentlemen-of-verona", "macbeth"], costs, "cpu", 1, 1e9, log, {"default"}, budget_steps=10)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 6 and "boom" in rows[4]["error"]
    assert rows[5]["play"] == "macbeth" and rows[5]["steps"] == 10


def test_no_run_starts_after_the_deadline(grid, monkeypatch, tmp_path):
    monkeypatch.setattr(grid, "run_train", lambda *a: pytest.fail("started after the deadline"))
    log = tmp_path / "grid.jsonl"
    grid.grid(["macbeth"], {"default": 1.0}, "cpu", 2, 0.0, log, {"default"})
    assert log.read_text() == ""


def test_a_real_run_with_the_grids_base_flags(grid, tmp_path):
    """The base (the first default's flags) and a candidate's flags parse and train, a few steps."""
    costs = json.loads(grid.COST_FILE.read_text())["ms_per_step"]
    log = tmp_path / "grid.jsonl"
    grid.grid(["macbeth"], costs, "cpu", 1, 1e9, log, {"ctx 128, batch 8, no attention-weight dropout"},
              budget_steps=3)
    (row,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert "error" not in row, row.get("error")
    assert row["steps"] >= 3 and 3.0 < row["val_loss"] < 4.5  # a few steps from ln(vocab) ~ 4.1


class _Dir:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        return str(self.path)

    def __exit__(self, *exc) -> None:
        return None
