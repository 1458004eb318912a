"""Data-parallel scaling on one machine: ``attnlab train gpt`` with 1 and 2 processes under torchrun.

Every configuration trains the same model on the same global batch (nanoGPT's CPU recipe: 4
layers, width 128, context 64, 12 sequences per step) for a few dozen steps, launched with
``python -m torch.distributed.run --standalone --nproc_per_node N -m attnlab train gpt ...``;
tokens/s is the median of the per-step figures in ``metrics.jsonl`` after the first 5 steps.

- 1 process with as many threads as cores (the baseline: what a plain ``attnlab train`` does);
- 1 process with 1 thread;
- 2 processes with 1 thread each, DDP (gloo): each trains on half of the batch, gradients all-reduced;
- 2 processes with 1 thread each, FSDP (``--fsdp``).

The configurations take turns (``--rounds``), as the machine may be shared.

    python benchmarks/scaling.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, describe, machine, report, table

NAME = "scaling"
TITLE = "Data-parallel scaling: 1 vs 2 processes under torchrun, CPU"
COMMAND = "python benchmarks/scaling.py"
CONFIGS = {  # name: (processes, threads per process, extra options)
    "1 process x all cores": (1, None, []),
    "1 process x 1 thread": (1, 1, []),
    "2 processes x 1 thread, DDP": (2, 1, []),
    "2 processes x 1 thread, FSDP": (2, 1, ["--fsdp"]),
}


def launch(processes: int, threads: int | None, extra: list[str], steps: int, data: str,
           out: Path) -> list[float]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["OMP_NUM_THREADS"] = str(threads or os.cpu_count() or 1)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "attnlab", "train", "gpt", "--data", data, "--preset", "gpt-micro", "--batch-size", "12",
           "--steps", str(steps), "--out", str(out), "--set", "dropout=0",
           "--set", f"eval_every={10 * steps}", "--set", "eval_iters=1", "--set", f"ckpt_every={10 * steps}",
           "--quiet", "--no-sample", *extra]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["tokens_per_sec"] for r in rows if "tokens_per_sec" in r and r["step"] > 5]


def run(steps: int = 40, rounds: int = 2, data: str = "julius-caesar") -> dict:
    samples: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            names = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
            for i, name in enumerate(names):
                processes, threads, extra = CONFIGS[name]
                tps = launch(processes, threads, extra, steps, data, Path(tmp) / f"run{r}-{i}")
                samples[name] += tps
                print(f"  round {r + 1}: {name:32s} {statistics.median(tps):10,.0f} tokens/s", flush=True)
    base = statistics.median(samples["1 process x all cores"])
    rows = []
    for name, values in samples.items():
        processes, threads, _ = CONFIGS[name]
        tps = statistics.median(values)
        rows.append({"config": name, "processes": processes, "threads_per_process": threads or os.cpu_count(),
                     "tokens_per_sec": tps, "vs_one_process": tps / base, "steps_measured": len(values)})
    info = {**machine("cpu"), "torch_threads": "per configuration"}
    return {"name": NAME, "machine": info, "steps": steps, "rounds": rounds, "data": data,
            "results": rows}


def markdown(result: dict) -> str:
    rows = [[r["config"], r["tokens_per_sec"], f"{r['vs_one_process']:.2f}x"] for r in result["results"]]
    return (table(["configuration", "tokens / s", "vs 1 process"], rows)
            + f"\n\n`attnlab train gpt --preset gpt-micro --batch-size 12` on {result['data']}, "
              f"{result['steps']} steps per launch, {result['rounds']} launches per configuration in turns; "
              "median of the per-step tokens/s after step 5. On an idle machine, 2 processes on 2 cores can "
              "at best match one process that uses both cores for its matrix products: the point here is "
              "that data parallelism works and what its communication costs. On a machine shared with other "
              "jobs, one process with several threads suffers most: its threads wait for each other at "
              "every parallel operation, so single-threaded processes come out ahead.")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default="julius-caesar", help="corpus name or text file")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/scaling.json)")
    args = parser.parse_args(argv)
    print(f"{TITLE}\n{describe(machine('cpu'))}\n")
    result = run(args.steps, args.rounds, args.data)
    print()
    return report(NAME, None, result, markdown, args.out)


if __name__ == "__main__":
    main()
