"""A wide search for the main job's recipe at equal CPU time: step costs measured here, losses on any device.

`benchmarks/main_job.py --search` times every candidate on this 2-core CPU, one whole command at a time:
about two minutes a run, so a handful of recipes a session. This script splits the two halves of that
measurement so that many more recipes can be compared at the same CPU cost:

1. ``--cost`` (on the CPU the default must fit): for every distinct model shape in ``ARCHS``, the
   milliseconds of one training step of `attnlab train gpt` (steps 20 to 80 of a fresh run, two
   threads). The budget is the default's own cost: ``BUDGET_STEPS`` steps of the default's shape.
2. ``--grid`` (on any device; a GPU runs many at once): each candidate trains for
   ``steps = BUDGET_STEPS * cost(default) / cost(its shape)`` steps (the same CPU seconds as the default,
   ``BASE``: the default as it was when this grid ran),
   on each selection play, several processes at once. Only the final held-out loss counts here: the
   device's own speed does not. Results stream to a JSONL file, so a run stopped at its deadline keeps
   what finished.

The plays are never Julius Caesar (the protocol of benchmarks/main_job.py: choose elsewhere, report there).

    python benchmarks/main_job_grid.py --cost                         # here: step costs -> JSON
    python benchmarks/main_job_grid.py --grid --device cuda --jobs 14 --deadline 400
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import main_job
from common import RESULTS, machine

PLAYS = ("macbeth", "twelfth-night", "timon-of-athens", "two-gentlemen-of-verona")
# what the grid's "default" means: gpt-play as it was when the grid ran (context 64, batch 16, ReLU², dropout 0.1
# everywhere, weight decay 0.1), the flags every candidate starts from (later flags override earlier ones)
BASE = ["--preset", "gpt-play", "--set", "context_length=64", "--batch-size", "16", "--set", "mlp=relu2",
        "--set", "attn_dropout=0.1", "--set", "weight_decay=0.1"]
BUDGET_STEPS = 1400  # the default's steps; every candidate gets the same CPU time
COST_FILE = RESULTS / "main_job_costs.json"

# model shapes (and anything else that changes the cost of a step), as `attnlab train gpt` flags
ARCHS: dict[str, list[str]] = {
    "default": [],
    "no attention-weight dropout": ["--set", "attn_dropout=0"],
    "no dropout": ["--set", "dropout=0"],
    "ctx 128, batch 8": ["--set", "context_length=128", "--batch-size", "8"],
    "ctx 128, batch 12": ["--set", "context_length=128", "--batch-size", "12"],
    "ctx 128, batch 16": ["--set", "context_length=128"],
    "ctx 256, batch 4": ["--set", "context_length=256", "--batch-size", "4"],
    "ctx 96, batch 12": ["--set", "context_length=96", "--batch-size", "12"],
    "batch 12": ["--batch-size", "12"],
    "batch 24": ["--batch-size", "24"],
    "2 layers": ["--set", "n_layer=2"],
    "4 layers": ["--set", "n_layer=4"],
    "2 layers, width 192": ["--set", "n_layer=2", "--set", "n_embd=192", "--set", "n_head=6"],
    "4 layers, width 96": ["--set", "n_layer=4", "--set", "n_embd=96"],
    "no biases": ["--set", "bias=false"],
    "swiglu": ["--set", "mlp=swiglu"],
    "gelu": ["--set", "mlp=gelu"],
    "8 heads": ["--set", "n_head=8"],
    "2 heads": ["--set", "n_head=2"],
    "rmsnorm": ["--set", "norm=rmsnorm"],
    "untied embeddings": ["--set", "tie_weights=false"],
    "ctx 128, batch 8, no attention-weight dropout": ["--set", "context_length=128", "--batch-size", "8",
                                                      "--set", "attn_dropout=0"],
    "ctx 256, batch 4, no attention-weight dropout": ["--set", "context_length=256", "--batch-size", "4",
                                                      "--set", "attn_dropout=0"],
    "ctx 128, batch 8, no attention-weight dropout, 2 heads": [
        "--set", "context_length=128", "--batch-size", "8", "--set", "attn_dropout=0", "--set", "n_head=2"],
    "ctx 128, batch 8, no attention-weight dropout, 4 layers": [
        "--set", "context_length=128", "--batch-size", "8", "--set", "attn_dropout=0", "--set", "n_layer=4"],
    "ctx 128, batch 12, no attention-weight dropout": ["--set", "context_length=128", "--batch-size", "12",
                                                       "--set", "attn_dropout=0"],
    # round 2: the best of round 1 together
    "ctx 128, batch 8, no attention-weight dropout, swiglu": [
        "--set", "context_length=128", "--batch-size", "8", "--set", "attn_dropout=0", "--set", "mlp=swiglu"],
    # round 3
    "ctx 256, batch 4, no attention-weight dropout, swiglu": [
        "--set", "context_length=256", "--batch-size", "4", "--set", "attn_dropout=0", "--set", "mlp=swiglu"],
}

# training choices that leave the step's cost alone, tried on the default shape
TRAINING: dict[str, list[str]] = {
    "seed 1": ["--seed", "1"],
    "seed 2": ["--seed", "2"],
    "muon lr 0.015": ["--set", "muon_lr=0.015"],
    "muon lr 0.03": ["--set", "muon_lr=0.03"],
    "lr 2e-3": ["--lr", "2e-3"],
    "lr 5e-3": ["--lr", "5e-3"],
    "weight decay 0": ["--set", "weight_decay=0"],
    "weight decay 0.3": ["--set", "weight_decay=0.3"],
    "weight decay 0.6": ["--set", "weight_decay=0.6"],
    "dropout 0.05": ["--set", "dropout=0.05"],
    "dropout 0.15": ["--set", "dropout=0.15"],
    "warmup 20": ["--set", "warmup_steps=20"],
    "warmup 150": ["--set", "warmup_steps=150"],
    "beta2 0.95": ["--set", "beta2=0.95"],
    "grad clip 0": ["--set", "grad_clip=0"],
    "grad clip 0.5": ["--set", "grad_clip=0.5"],
    "logit soft-cap 30": ["--set", "logit_softcap=30"],
    "logit soft-cap 15": ["--set", "logit_softcap=15"],
    "zero-init projections": ["--set", "zero_init_proj=true"],
    "min_lr 3e-4": ["--set", "min_lr=3e-4"],
}


# a shape with other training choices: name -> (shape, extra flags)
COMBOS: dict[str, tuple[str, list[str]]] = {
    f"ctx 128, batch 8, no attention-weight dropout, {choice}": (
        "ctx 128, batch 8, no attention-weight dropout", flags)
    for choice, flags in {"dropout 0.15": ["--set", "dropout=0.15"], "dropout 0.2": ["--set", "dropout=0.2"],
                          "weight decay 0.3": ["--set", "weight_decay=0.3"],
                          "muon lr 0.03": ["--set", "muon_lr=0.03"], "seed 1": ["--seed", "1"]}.items()
}
# round 2: seeds of round 1's best, and those choices together
_CTX = "ctx 128, batch 8, no attention-weight dropout"
_WD = ["--set", "weight_decay=0.3"]
ROUND2: dict[str, tuple[str, list[str]]] = {
    **{f"{_CTX}, weight decay 0.3, seed {seed}": (_CTX, [*_WD, "--seed", str(seed)]) for seed in (1, 2)},
    **{f"swiglu, seed {seed}": ("swiglu", ["--seed", str(seed)]) for seed in (1, 2)},
    f"{_CTX}, swiglu": (f"{_CTX}, swiglu", []),
    f"{_CTX}, swiglu, weight decay 0.3": (f"{_CTX}, swiglu", _WD),
    **{f"{_CTX}, swiglu, weight decay 0.3, seed {seed}": (f"{_CTX}, swiglu", [*_WD, "--seed", str(seed)])
       for seed in (1, 2)},
    f"{_CTX}, swiglu, weight decay 0.3, muon lr 0.03": (f"{_CTX}, swiglu", [*_WD, "--set", "muon_lr=0.03"]),
    "swiglu, weight decay 0.3": ("swiglu", _WD),
    "ctx 256, batch 4, no attention-weight dropout, seed 1": ("ctx 256, batch 4, no attention-weight dropout",
                                                              ["--seed", "1"]),
}
# round 3 (on the 2-core CPU, after the GPU time was spent): more regularisation, a longer context
_SWIGLU = f"{_CTX}, swiglu"
ROUND3: dict[str, tuple[str, list[str]]] = {
    f"{_SWIGLU}, weight decay 0.5": (_SWIGLU, ["--set", "weight_decay=0.5"]),
    f"{_SWIGLU}, weight decay 0.3, dropout 0.15": (_SWIGLU, [*_WD, "--set", "dropout=0.15"]),
    "ctx 256, batch 4, no attention-weight dropout, swiglu, weight decay 0.3": (
        "ctx 256, batch 4, no attention-weight dropout, swiglu", _WD),
}
ROUNDS = {2: ROUND2, 3: ROUND3}


# run first (a run stopped at its deadline keeps these): the noise between seeds, then the likeliest gains
FIRST = ("default", "seed 1", "seed 2", "ctx 128, batch 8, no attention-weight dropout",
         "ctx 256, batch 4, no attention-weight dropout", "no attention-weight dropout")


def candidates() -> dict[str, tuple[str, list[str]]]:
    """name -> (shape, extra flags): every shape with the default training, the training choices, the combos;
    the ones in ``FIRST`` first, then the combos, shapes and training choices."""
    every = {arch: (arch, []) for arch in ARCHS}
    every.update({name: ("default", flags) for name, flags in TRAINING.items()})
    every.update(COMBOS)
    every.update(ROUND2)
    every.update(ROUND3)
    order = [*FIRST, *COMBOS, *ARCHS, *TRAINING, *ROUND2, *ROUND3]
    return {name: every[name] for name in dict.fromkeys(order)}


def run_train(flags: list[str], out: Path, threads: int, device: str) -> list[dict[str, Any]]:
    """One run from ``BASE`` plus ``flags`` on ``device`` in float32; its metrics rows (RuntimeError if it fails)."""
    return main_job.run_train([*BASE, "--device", device, "--dtype", "float32", *flags], out, threads)


def measure_costs(threads: int, known: dict[str, float]) -> dict[str, float]:
    """Milliseconds per training step of each shape not in ``known`` on this CPU (steps 20 to 80 of a run)."""
    costs = dict(known)
    with tempfile.TemporaryDirectory() as tmp:
        for number, (arch, flags) in enumerate(ARCHS.items()):
            if arch in costs:
                continue
            rows = run_train([*flags, "--steps", "80", "--set", "eval_every=1000", "--set", "ckpt_every=1000"],
                             Path(tmp) / str(number), threads, "cpu")
            times = {r["step"]: r["time"] for r in rows if "loss" in r}
            costs[arch] = round((times[80] - times[20]) / 60 * 1e3, 2)
            print(f"{arch:<48} {costs[arch]:7.2f} ms a step", flush=True)
    return costs


def grid(plays: list[str], costs: dict[str, float], device: str, jobs: int, deadline: float,
         log: Path, only: set[str] | None, budget_steps: int = BUDGET_STEPS) -> None:
    """Train every candidate on every play at the default's CPU cost; one JSON line per finished run."""
    start = time.monotonic()
    every = candidates()
    todo = [(name, play) for name in every if not only or name in only for play in plays]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(jobs) as pool, log.open("a") as sink:
        def job(number: int, name: str, play: str) -> dict[str, Any]:
            arch, extra = every[name]
            steps = round(budget_steps * costs["default"] / costs[arch])
            flags = [*ARCHS[arch], *extra, "--data", play, "--steps", str(steps), "--set", "ckpt_every=100000",
                     "--set", f"eval_every={steps}"]
            t0 = time.monotonic()
            rows = run_train(flags, Path(tmp) / str(number), 1, device)
            final = [r for r in rows if "val_loss" in r][-1]
            train = [r["loss"] for r in rows if "loss" in r][-50:]
            return {"name": name, "arch": arch, "play": play, "steps": steps, "device": device,
                    "val_loss": final["val_loss"],
                    "train_loss_last50": round(sum(train) / len(train), 4), "seconds": round(time.monotonic() - t0, 1)}

        pending: set[Any] = set()
        queue = list(enumerate(todo))
        while queue or pending:
            while queue and len(pending) < jobs and time.monotonic() - start < deadline:
                number, (name, play) = queue.pop(0)
                pending.add(pool.submit(job, number, name, play))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    row = future.result()
                except RuntimeError as error:
                    row = {"error": str(error)[-600:]}
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                print(json.dumps(row), flush=True)
        print(f"{len(todo) - len(queue)} of {len(todo)} runs started in {time.monotonic() - start:.0f} s", flush=True)


def summary(log: Path) -> str:
    """Mean held-out loss per candidate over the plays it finished on, best first."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "val_loss" in r]
    plays = sorted({r["play"] for r in rows})
    by_name: dict[str, dict[str, float]] = {}
    for r in rows:
        by_name.setdefault(r["name"], {})[r["play"]] = r["val_loss"]
    steps = {r["name"]: r["steps"] for r in rows}
    full = {n: v for n, v in by_name.items() if len(v) == len(plays)}
    base = full.get("default")
    lines = [f"| candidate | steps | {' | '.join(plays)} | mean | vs default |", "|---" * (len(plays) + 4) + "|"]
    for name, losses in sorted(full.items(), key=lambda kv: sum(kv[1].values())):
        mean = sum(losses.values()) / len(losses)
        delta = f"{mean - sum(base.values()) / len(base):+.4f}" if base else "-"
        cells = " | ".join(f"{losses[p]:.4f}" for p in plays)
        lines.append(f"| {name} | {steps[name]} | {cells} | {mean:.4f} | {delta} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--cost", action="store_true",
                      help="measure the CPU step of each shape not yet in --costs (write --costs)")
    mode.add_argument("--grid", action="store_true", help="train the candidates (read --costs)")
    mode.add_argument("--summary", action="store_true", help="print the table of a --log")
    p.add_argument("--costs", default=str(COST_FILE), help="the step-cost JSON (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="--cost: torch threads (default: %(default)s)")
    p.add_argument("--plays", default=",".join(PLAYS), help="--grid: comma-separated plays (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="--grid: where to train (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="--grid: runs at once")
    p.add_argument("--deadline", type=float, default=1e9, help="--grid: start no run after this many seconds")
    p.add_argument("--budget-steps", type=int, default=BUDGET_STEPS,
                   help="--grid: the default's steps; the others get its CPU time (default: %(default)s)")
    p.add_argument("--only", default=None, help="--grid: candidate names separated by semicolons")
    p.add_argument("--round", type=int, choices=sorted(ROUNDS), default=None, help="--grid: only this round's")
    p.add_argument("--log", default=str(RESULTS / "main_job_grid.jsonl"), help="--grid: JSONL of the runs")
    args = p.parse_args()
    if args.cost:
        path = Path(args.costs)
        known = json.loads(path.read_text())["ms_per_step"] if path.is_file() else {}
        result = {"machine": machine(), "threads": args.threads, "ms_per_step": measure_costs(args.threads, known)}
        Path(args.costs).write_text(json.dumps(result, indent=2) + "\n")
    elif args.grid:
        costs = json.loads(Path(args.costs).read_text())["ms_per_step"]
        log = Path(args.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        print(json.dumps({"machine": machine(args.device)}), flush=True)
        only = set(args.only.split(";")) if args.only else None
        if args.round:
            only = set(ROUNDS[args.round])
        grid(args.plays.split(","), costs, args.device, args.jobs, args.deadline, log, only, args.budget_steps)
        print(summary(log))
    else:
        print(summary(Path(args.log)))


if __name__ == "__main__":
    main()
