"""Run a plan of sub-runs in order: skip the finished ones, resume the interrupted one, evaluate each.

``evaluate(spec, outcome)`` turns a freshly trained run into a dict of numbers and text; with the
training summary it becomes the run's ``result.json``, the mark of a finished run. A later call on
the same runs folder reads those results back instead of training again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from attnlab.experiments.progress import PlanProgress
from attnlab.experiments.runner import (
    RunOutcome,
    RunSpec,
    delete_weights,
    is_finished,
    read_result,
    train_run,
    write_result,
)

Evaluate = Callable[[RunSpec, RunOutcome], dict[str, Any]]


def compact_history(rows: list[dict[str, Any]], points: int = 60) -> dict[str, list[list[float]]]:
    """Validation points and a thinned training curve, ``[step, time, loss]`` each (small JSON)."""
    val = [[r["step"], r.get("time"), r["val_loss"]] for r in rows if "val_loss" in r]
    train = [[r["step"], r.get("time"), r["loss"]] for r in rows if "loss" in r]
    stride = max(1, len(train) // points)
    thinned = train[::stride]
    if train and thinned[-1] is not train[-1]:
        thinned.append(train[-1])
    return {"val": val, "train": thinned}


def history_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Metric rows (as in metrics.jsonl) back from a result's compact history, for the loss plots."""
    history = result.get("history", {})
    rows = [{"step": s, "time": t, "loss": v} for s, t, v in history.get("train", [])]
    rows += [{"step": s, "time": t, "val_loss": v} for s, t, v in history.get("val", [])]
    return sorted(rows, key=lambda r: r["step"])


def run_plan(specs: list[RunSpec], runs_dir: Path, evaluate: Evaluate, *, title: str, progress: bool = True,
             fresh: bool = False, keep_weights: bool = True,
             estimate: Callable[[RunSpec], float | None] | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every spec (in ``runs_dir/<spec.name>``); returns their results in order."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"run names must be unique in a plan: {names}")
    runs_dir = Path(runs_dir)
    estimates = [estimate(s) if estimate else s.budget_s for s in specs]
    bar = PlanProgress(title, estimates, enabled=progress)
    results = []
    try:
        for index, spec in enumerate(specs):
            run_dir = runs_dir / spec.name
            if is_finished(run_dir) and not fresh:
                result = read_result(run_dir)
                if result.get("spec") == spec.to_dict():
                    bar.skip(index, spec.label)
                    results.append(result)
                    continue
            bar.start(index, spec.label)
            total = len(specs)
            outcome = train_run(spec, run_dir, progress=progress, fresh=fresh,
                                description=f"{index + 1}/{total} {spec.label}")
            result = {"name": spec.name, "label": spec.label, "kind": spec.kind, "spec": spec.to_dict(),
                      "training": outcome.to_dict(), "history": compact_history(outcome.history),
                      **evaluate(spec, outcome)}
            write_result(run_dir, result)
            if not keep_weights:
                delete_weights(run_dir)
            results.append(result)
            val = outcome.val_loss
            bar.finish(index, spec.label, f"{outcome.step} steps, validation loss {val:.4f}")
    finally:
        bar.close()
    return results
