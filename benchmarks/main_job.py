"""The main job, measured: `attnlab train gpt` against a nanoGPT-recipe baseline, play by play.

For each play: the whole command's wall time (`python -m attnlab train gpt --data PLAY ...`, a fresh
process, data loading and the final evaluation included), the held-out validation loss (nats per
character on attnlab's split: the last 10% of the play, never trained on) along the way, and the
share of the words of three 2,000-character samples (temperature 0.8, seeds 1, 2, 3) that are words
of Shakespeare's plays (``attnlab.data.play_words``).

The baseline is attnlab's plain GPT with nanoGPT's CPU hyperparameters (shakespeare_char on a
laptop): 4 layers, 4 heads, width 128, context 64, batch 12, dropout 0.1, learning rate 1e-3 decayed
to 1e-4, 3,500 iterations. Its loss is also read at the default's wall time ("equal time").

``--search`` runs the candidate recipes instead, on plays other than Julius Caesar (the protocol:
choose on other plays of similar size, then report Julius Caesar).

    python benchmarks/main_job.py                       # the default vs the baseline, 4 plays
    python benchmarks/main_job.py --search --plays macbeth,twelfth-night
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, machine, report

NAME = "main_job"
TITLE = "The main job: `attnlab train gpt` against a nanoGPT-recipe baseline"
PLAYS = ("julius-caesar", "the-tempest", "pericles", "edward-iii")
SEARCH_PLAYS = ("macbeth", "twelfth-night")
SAMPLE_CHARS = 2000
SAMPLE_SEEDS = (1, 2, 3)

BASELINE = ["--preset", "gpt-micro", "--set", "dropout=0.1", "--batch-size", "12", "--lr", "1e-3",
            "--set", "min_lr=1e-4", "--steps", "3500", "--set", "warmup_steps=100", "--set", "eval_every=250",
            "--set", "ckpt_every=3500", "--optimizer", "adamw"]
DEFAULT: list[str] = []  # `attnlab train gpt` with no options

# the recipes tried by --search (each a list of `attnlab train gpt` flags)
CANDIDATES: dict[str, list[str]] = {
    "gpt-jc (the old default)": ["--preset", "gpt-jc"],
    "speedrun 400": ["--preset", "gpt-speedrun"],
    "speedrun 1200, dropout 0.1": ["--preset", "gpt-speedrun", "--steps", "1200", "--set", "dropout=0.1"],
    "speedrun 1200, dropout 0.2": ["--preset", "gpt-speedrun", "--steps", "1200", "--set", "dropout=0.2"],
    "speedrun ctx 128, 700, dropout 0.1": ["--preset", "gpt-speedrun", "--steps", "700", "--set",
                                           "context_length=128", "--set", "dropout=0.1"],
    "speedrun width 192, 700, dropout 0.2": ["--preset", "gpt-speedrun", "--steps", "700", "--set", "n_embd=192",
                                             "--set", "n_head=6", "--set", "dropout=0.2"],
    "speedrun 6 layers, 800, dropout 0.2": ["--preset", "gpt-speedrun", "--steps", "800", "--set", "n_layer=6",
                                            "--set", "dropout=0.2"],
    "speedrun batch 32, 700, dropout 0.1": ["--preset", "gpt-speedrun", "--steps", "700", "--batch-size", "32",
                                            "--set", "dropout=0.1"],
    # round 2 (2026-11-30, quiet machine): the ~120 s budget with 2 threads is ~1,600 steps at batch 16, context 64
    "speedrun 1600, dropout 0.1": ["--preset", "gpt-speedrun", "--steps", "1600", "--set", "dropout=0.1"],
    "speedrun 1600, dropout 0.1, min_lr 0": ["--preset", "gpt-speedrun", "--steps", "1600", "--set", "dropout=0.1",
                                             "--set", "min_lr=0"],
    "speedrun 1600, dropout 0.1, wd 0.3": ["--preset", "gpt-speedrun", "--steps", "1600", "--set", "dropout=0.1",
                                           "--set", "weight_decay=0.3"],
    "speedrun 1600, dropout 0.15": ["--preset", "gpt-speedrun", "--steps", "1600", "--set", "dropout=0.15"],
    "speedrun batch 24, 1100, dropout 0.1": ["--preset", "gpt-speedrun", "--steps", "1100", "--batch-size", "24",
                                             "--set", "dropout=0.1"],
    "speedrun ctx 96, 1100, dropout 0.1": ["--preset", "gpt-speedrun", "--steps", "1100", "--set",
                                           "context_length=96", "--set", "dropout=0.1"],
    # round 3: dropout costs a third of the CPU step (its masks); dropping only sublayer outputs is cheaper
    "speedrun 1300, dropout 0.1 but none on attention weights, min_lr 0": [
        "--preset", "gpt-speedrun", "--steps", "1300", "--set", "dropout=0.1", "--set", "attn_dropout=0",
        "--set", "min_lr=0"],
    "speedrun 1300, dropout 0.1, min_lr 0": ["--preset", "gpt-speedrun", "--steps", "1300", "--set", "dropout=0.1",
                                             "--set", "min_lr=0"],
    # round 4: what fits the 120 s budget with 2 threads (dropout's masks cost ~18 of ~93 ms a step on this CPU)
    "speedrun 1100, dropout 0.1, min_lr 0": ["--preset", "gpt-speedrun", "--steps", "1100", "--set", "dropout=0.1",
                                             "--set", "min_lr=0"],
    "speedrun 1250 with AdamW (lr 3e-3), dropout 0.1, min_lr 0": [
        "--preset", "gpt-speedrun", "--steps", "1250", "--optimizer", "adamw", "--set", "dropout=0.1",
        "--set", "min_lr=0"],
    # round 5: a faster step (fewer layers) or a larger Muon step, within the budget
    "speedrun 1100, dropout 0.1, min_lr 0, muon lr 0.04": [
        "--preset", "gpt-speedrun", "--steps", "1100", "--set", "dropout=0.1", "--set", "min_lr=0",
        "--set", "muon_lr=0.04"],
    "speedrun 3 layers, 1400, dropout 0.1, min_lr 0": [
        "--preset", "gpt-speedrun", "--steps", "1400", "--set", "n_layer=3", "--set", "dropout=0.1",
        "--set", "min_lr=0"],
    # round 6: both
    "speedrun 3 layers, 1400, dropout 0.1, min_lr 0, muon lr 0.04": [
        "--preset", "gpt-speedrun", "--steps", "1400", "--set", "n_layer=3", "--set", "dropout=0.1",
        "--set", "min_lr=0", "--set", "muon_lr=0.04"],
    # round 7: the 3-layer model's whole command takes 94 s at 1,400 steps (2 threads): room for more steps
    "speedrun 3 layers, 1700, dropout 0.1, min_lr 0": [
        "--preset", "gpt-speedrun", "--steps", "1700", "--set", "n_layer=3", "--set", "dropout=0.1",
        "--set", "min_lr=0"],
    "speedrun 3 layers, 1850, dropout 0.1, min_lr 0": [
        "--preset", "gpt-speedrun", "--steps", "1850", "--set", "n_layer=3", "--set", "dropout=0.1",
        "--set", "min_lr=0"],
}


def run_train(flags: list[str], out: Path, threads: int | None) -> list[dict[str, Any]]:
    """`python -m attnlab train gpt --out OUT --quiet --no-sample FLAGS` in a fresh process; its metrics rows.

    Raises RuntimeError (with the end of stderr) if the command fails."""
    command = [sys.executable, "-m", "attnlab", "train", "gpt", "--out", str(out), "--quiet", "--no-sample",
               *flags, *(["--threads", str(threads)] if threads else [])]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def train(play: str, flags: list[str], out: Path, threads: int | None) -> dict[str, Any]:
    """Run `attnlab train gpt` on ``play``; its wall time, losses and run folder."""
    start = time.perf_counter()
    try:
        rows = run_train(["--data", play, *flags], out, threads)
    except RuntimeError as error:
        raise SystemExit(str(error)) from None
    wall = time.perf_counter() - start
    curve = [(r["time"], r["val_loss"]) for r in rows if "val_loss" in r]
    return {"wall_s": round(wall, 1), "train_s": curve[-1][0], "val_loss": curve[-1][1], "curve": curve,
            "steps": max(r["step"] for r in rows)}


def readable_share(run_dir: Path) -> float:
    """Share of the words of three 2,000-character samples (T = 0.8) found in the plays."""
    from attnlab.api import load_run
    from attnlab.data.play_words import play_word_share, words

    run = load_run(run_dir)
    texts = [run.generate("\n", max_new_tokens=SAMPLE_CHARS, temperature=0.8, seed=s) for s in SAMPLE_SEEDS]
    total = sum(len(words(t)) for t in texts)
    return sum(play_word_share(t)[0] * len(words(t)) for t in texts) / max(total, 1)


def loss_at(curve: list[tuple[float, float]], seconds: float) -> float | None:
    """The last validation loss measured within ``seconds`` of training (None: none yet)."""
    seen = [loss for t, loss in curve if t <= seconds]
    return seen[-1] if seen else None


def measure(plays: list[str], recipes: dict[str, list[str]], threads: int | None, samples: bool,
            reuse: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every recipe on every play; ``reuse`` (play -> name -> row) supplies rows instead of a rerun."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for play in plays:
            for number, (name, flags) in enumerate(recipes.items()):
                if reuse and name in reuse.get(play, {}):
                    results.setdefault(play, {})[name] = {**reuse[play][name], "reused": True}
                    continue
                out = Path(tmp) / f"{play}-{number}"
                row = train(play, flags, out, threads)
                if samples:
                    row["word_share"] = round(readable_share(out), 4)
                results.setdefault(play, {})[name] = row
                print(f"{play:<16} {name:<40} val {row['val_loss']:.4f}  wall {row['wall_s']:6.1f} s"
                      + (f"  words {row['word_share']:.1%}" if samples else ""), flush=True)
    return results


def markdown(result: dict[str, Any]) -> str:
    lines = ["| play | recipe | held-out loss | wall time (s) | words found in the plays "
             "| baseline loss at equal time |", "|---|---|---|---|---|---|"]
    for play, rows in result["plays"].items():
        base = rows.get("nanoGPT recipe")
        for name, row in rows.items():
            equal = ""
            if base and name != "nanoGPT recipe":
                at = loss_at(base["curve"], row["train_s"])
                equal = "-" if at is None else f"{at:.4f}"
            share = f"{row['word_share']:.1%}" if "word_share" in row else "-"
            lines.append(f"| {play} | {name} | {row['val_loss']:.4f} | {row['wall_s']:.0f} | {share} | {equal} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plays = list(result["plays"])
    fig, axes = plt.subplots(1, len(plays), figsize=(4.2 * len(plays), 3.6), squeeze=False)
    for ax, play in zip(axes[0], plays):
        for name, row in result["plays"][play].items():
            t, loss = zip(*row["curve"])
            ax.plot(t, loss, marker="o", markersize=3, label=name)
        ax.set_title(play)
        ax.set_xlabel("training seconds")
        ax.set_ylim(1.4, 2.6)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out loss (nats / char)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--search", action="store_true", help="run the candidate recipes (on --plays) instead")
    p.add_argument("--plays", default=None, help="comma-separated corpus names")
    p.add_argument("--only", default=None, help="search: candidate names separated by semicolons")
    p.add_argument("--threads", type=int, default=None, help="torch threads for every run")
    p.add_argument("--no-samples", action="store_true", help="skip the 3 x 2,000-character samples")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/main_job[_search].json)")
    p.add_argument("--baseline-from", default=None,
                   help="take the nanoGPT recipe's rows from this earlier result JSON instead of rerunning them "
                        "(its runs are deterministic: only worth it while its code is unchanged)")
    args = p.parse_args()
    if args.search:
        plays = args.plays.split(",") if args.plays else list(SEARCH_PLAYS)
        recipes = CANDIDATES if not args.only else {k: CANDIDATES[k] for k in args.only.split(";")}
        name = NAME + "_search"
    else:
        plays = args.plays.split(",") if args.plays else list(PLAYS)
        recipes = {"attnlab train gpt": DEFAULT, "nanoGPT recipe": BASELINE}
        name = NAME
    info = machine()
    print(f"{TITLE}\n")
    reuse = None
    if args.baseline_from:
        earlier = json.loads(Path(args.baseline_from).read_text())["plays"]
        reuse = {play: {"nanoGPT recipe": rows["nanoGPT recipe"]} for play, rows in earlier.items()
                 if "nanoGPT recipe" in rows}
    result = {"machine": info, "command": " ".join(["python benchmarks/main_job.py", *sys.argv[1:]]),
              "plays": measure(plays, recipes, args.threads, not args.no_samples, reuse)}
    if not args.search:
        plot(result, ROOT / "docs" / "images" / "main-job-loss.png")
    report(name, None, result, markdown, args.out)


if __name__ == "__main__":
    main()
