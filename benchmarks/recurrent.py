"""Scratch vs fast recurrent cells: forward + backward tokens per second, side by side in one run.

For each cell (Elman RNN, LSTM, GRU) the scratch stack (:mod:`attnlab.scratch.recurrent`, a Python loop
over time steps, one small product per gate) and the fast layer (:mod:`attnlab.layers.recurrent`,
``torch.nn.RNN/LSTM/GRU``: fused gates, one input product for all steps, the loop in C++ or cuDNN) get
the same weights and the same batch; we time ``forward + backward`` of ``sum(outputs)`` and report
tokens/s (batch x sequence / seconds per iteration, median of the timed iterations) and the ratio.

    python benchmarks/recurrent.py                      # batch 32, sequence 128, width 256, CPU
    python benchmarks/recurrent.py --device cuda --out benchmarks/results/recurrent-cuda.json

Writes JSON (default ``benchmarks/results/recurrent.json``) with the machine it ran on.

``--lm-compare`` instead trains the default GPT (``attnlab train gpt``) and a 2-layer LSTM of width 256
(``attnlab train lstm``, preset ``jc``) for the same training wall-clock time on the same corpus (char
tokenizer), side by side on disjoint CPU cores (``--threads`` each), and reports both validation losses.
Short calibration runs measure each model's seconds per step; the GPT keeps its default number of steps,
the LSTM gets as many steps as fit in the GPT's estimated time (its cosine schedule then completes), capped
by ``--max-time`` at that time::

    python benchmarks/recurrent.py --lm-compare --threads 2 --out benchmarks/results/lstm-vs-gpt.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from attnlab.layers.recurrent import RecurrentLayer, copy_scratch_to_fast
from attnlab.scratch.recurrent import Recurrent

KINDS = ("rnn", "lstm", "gru")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fwd_bwd(module: torch.nn.Module, x: torch.Tensor, iters: int, warmup: int) -> list[float]:
    """Seconds per forward+backward, one entry per timed iteration."""
    times = []
    for i in range(warmup + iters):
        sync(x.device)
        start = time.perf_counter()
        out, _ = module(x)
        out.sum().backward()
        sync(x.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
        module.zero_grad(set_to_none=True)
    return times


def bench_kind(kind: str, batch: int, seq: int, width: int, iters: int, warmup: int,
               device: torch.device) -> dict:
    torch.manual_seed(0)
    scratch = Recurrent(kind, width, width).to(device)
    fast = RecurrentLayer(kind, width, width).to(device)
    copy_scratch_to_fast(scratch, fast)
    x = torch.randn(batch, seq, width, device=device)
    with torch.no_grad():  # same weights, same answer (the tests check gradients too)
        diff = (scratch(x)[0] - fast(x)[0]).abs().max().item()
    row = {"kind": kind, "max_abs_diff": diff}
    for name, module in (("scratch", scratch), ("fast", fast)):
        seconds = statistics.median(time_fwd_bwd(module, x, iters, warmup))
        row[f"{name}_ms"] = round(seconds * 1000, 3)
        row[f"{name}_tokens_per_s"] = round(batch * seq / seconds, 1)
    row["speedup"] = round(row["fast_tokens_per_s"] / row["scratch_tokens_per_s"], 2)
    return row


def machine(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "device": str(device), "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# LSTM vs GPT for the same wall-clock time
# ------------------------------------------------------------------------------------------------


def train_command(kind: str, out: Path, data: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "attnlab", "train", kind, "--data", data, "--tokenizer", "char", "--out",
            str(out), "--overwrite", "--quiet", "--no-sample", *extra]


def launch(command: list[str], cores: list[int] | None, threads: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def pin() -> None:
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)

    handle = open(log, "w", encoding="utf-8")  # closed by finish()
    proc = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=pin)
    proc.log = handle  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen) -> None:
    code = proc.wait()
    proc.log.close()  # type: ignore[attr-defined]
    if code != 0:
        raise SystemExit(f"{' '.join(proc.args)} failed with exit code {code}; see {proc.log.name}")


def seconds_per_step(run: Path, skip: int) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "loss" in r]
    first, last = steps[skip - 1], steps[-1]
    return (last["time"] - first["time"]) / (last["step"] - first["step"])


def run_summary(run: Path) -> dict:
    state = json.loads((run / "trainer_state.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((run / "config.json").read_text())
    from attnlab.models.registry import load_model

    return {"model_type": config["model_type"], "config": config["config"],
            "parameters": sum(p.numel() for p in load_model(run).parameters()),
            "steps": state["step"], "train_seconds": round(state["elapsed"], 1),
            "val_loss": state["val_loss"], "best_val_loss": state["best_val_loss"],
            "val_curve": [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]}


def compare_with_gpt(args: argparse.Namespace) -> int:
    threads = args.threads or 2
    torch.set_num_threads(threads)  # so that machine() records the threads each run uses
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    gpt_cores = cores[:threads] if len(cores) >= 2 * threads else None
    lstm_cores = cores[threads : 2 * threads] if len(cores) >= 2 * threads else None
    quick = ["--set", "eval_every=100000", "--set", "eval_iters=1", "--set", "ckpt_every=100000"]
    calib = args.calibration_steps
    print(f"calibrating ({calib} steps each, {threads} threads each) ...", flush=True)
    procs = [launch(train_command("gpt", work / "calib-gpt", args.data, ["--steps", str(calib), *quick]),
                    gpt_cores, threads, work / "calib-gpt.log"),
             launch(train_command("lstm", work / "calib-lstm", args.data, ["--steps", str(calib), *quick]),
                    lstm_cores, threads, work / "calib-lstm.log")]
    for proc in procs:
        finish(proc)
    gpt_step = seconds_per_step(work / "calib-gpt", skip=5)
    lstm_step = seconds_per_step(work / "calib-lstm", skip=5)
    gpt_steps = args.gpt_steps
    if args.max_seconds and gpt_steps * gpt_step > args.max_seconds:
        gpt_steps = max(10, int(args.max_seconds / gpt_step))
        print(f"the GPT's {args.gpt_steps} steps would take longer than --max-seconds {args.max_seconds:g}: "
              f"training it for {gpt_steps} steps instead", flush=True)
    budget = gpt_steps * gpt_step
    lstm_steps = max(10, int(budget / lstm_step))
    print(f"gpt {gpt_step * 1000:.1f} ms/step x {gpt_steps} steps = {budget:.0f} s estimated; "
          f"lstm {lstm_step * 1000:.1f} ms/step -> {lstm_steps} steps (capped at {budget:.0f} s)", flush=True)
    procs = [launch(train_command("gpt", work / "gpt", args.data, ["--steps", str(gpt_steps)]),
                    gpt_cores, threads, work / "gpt.log"),
             launch(train_command("lstm", work / "lstm", args.data,
                                  ["--steps", str(lstm_steps), "--max-time", f"{budget:.1f}"]),
                    lstm_cores, threads, work / "lstm.log")]
    for proc in procs:
        finish(proc)
    gpt, lstm = run_summary(work / "gpt"), run_summary(work / "lstm")
    gap = (lstm["best_val_loss"] - gpt["best_val_loss"]) / gpt["best_val_loss"]
    for name, row in (("gpt", gpt), ("lstm", lstm)):
        print(f"{name:<5} {row['parameters'] / 1e6:.2f}M parameters, {row['steps']} steps in "
              f"{row['train_seconds']:.0f} s, validation loss {row['val_loss']:.4f} "
              f"(best {row['best_val_loss']:.4f})")
    print(f"LSTM best validation loss is {gap:+.1%} relative to the GPT's (target: within +15%)")
    result = {"benchmark": "LSTM (2 x 256) vs default GPT, same training wall-clock time",
              "data": args.data, "tokenizer": "char", "threads_each": threads,
              "seconds_per_step": {"gpt": gpt_step, "lstm": lstm_step}, "budget_seconds": budget,
              "gpt_steps_planned": gpt_steps, "lstm_steps_planned": lstm_steps,
              "machine": machine(torch.device("cpu")), "gpt": gpt, "lstm": lstm, "relative_gap": gap}
    write_json(Path(args.out), result)
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--width", type=int, default=256, help="input and hidden size")
    p.add_argument("--iters", type=int, default=5, help="timed iterations per module (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of rnn,lstm,gru")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--out", default=None, help="JSON file (default benchmarks/results/recurrent.json, or "
                   "benchmarks/results/lstm-vs-gpt.json with --lm-compare)")
    p.add_argument("--lm-compare", action="store_true",
                   help="train the default GPT and a 2 x 256 LSTM for the same wall-clock time instead")
    p.add_argument("--data", default="julius-caesar", help="corpus for --lm-compare")
    p.add_argument("--gpt-steps", type=int, default=2000, help="GPT steps for --lm-compare (its default)")
    p.add_argument("--calibration-steps", type=int, default=30)
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="--lm-compare: fewer GPT steps if its default would take longer (0 = no limit)")
    p.add_argument("--workdir", default="runs/lstm-vs-gpt", help="run folders for --lm-compare")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = f"benchmarks/results/{'lstm-vs-gpt' if args.lm_compare else 'recurrent'}.json"
    if args.lm_compare:
        return compare_with_gpt(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        print(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}", file=sys.stderr)
        return 2
    print(f"forward+backward, batch {args.batch}, sequence {args.seq}, width {args.width}, on {device}"
          f" ({torch.get_num_threads()} CPU threads)")
    print(f"{'cell':<6}{'scratch tok/s':>16}{'fast tok/s':>14}{'fast/scratch':>14}{'max |diff|':>12}")
    rows = []
    for kind in kinds:
        row = bench_kind(kind, args.batch, args.seq, args.width, args.iters, args.warmup, device)
        rows.append(row)
        print(f"{kind:<6}{row['scratch_tokens_per_s']:>16,.0f}{row['fast_tokens_per_s']:>14,.0f}"
              f"{row['speedup']:>13.1f}x{row['max_abs_diff']:>12.1e}", flush=True)
    result = {"benchmark": "recurrent scratch vs fast, forward+backward",
              "settings": {"batch": args.batch, "seq": args.seq, "width": args.width, "iters": args.iters,
                           "warmup": args.warmup},
              "machine": machine(device), "results": rows}
    write_json(Path(args.out), result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
