"""``attnlab plot RUN [RUN...] --out loss.png``: training and validation loss of runs, on one figure."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plot", help="overlay the train/validation loss curves of one or more runs",
        description="Read metrics.jsonl of each run and draw its training loss (thin line, smoothed) and "
                    "held-out validation loss (markers) on one figure.",
        epilog="example:\n"
               "  attnlab plot runs/gpt-1-layer runs/gpt-3-layers --out layers.png --title 'layers'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (each with a metrics.jsonl)")
    p.add_argument("--out", required=True, help="image file: .png, .svg or .pdf")
    p.add_argument("--labels", default=None,
                   help="comma-separated legend names, one per run (default: the run folders' names)")
    p.add_argument("--title", default="loss", help="figure title")
    p.add_argument("--log-y", action="store_true", help="logarithmic loss axis")
    p.set_defaults(func=run)


def run_labels(paths: list[str], labels: str | None) -> list[str]:
    """Legend names: ``--labels`` if given, else each folder's name (its full path where names clash)."""
    from pathlib import Path

    from attnlab.errors import AttnlabError

    if labels is not None:
        names = [name.strip() for name in labels.split(",")]
        if len(names) != len(paths):
            raise AttnlabError(f"--labels has {len(names)} names for {len(paths)} runs; give one per run")
        return names
    names = [Path(p).resolve().name for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from attnlab.errors import AttnlabError
    from attnlab.io import read_metrics
    from attnlab.outputs import check_output_file
    from attnlab.training.plots import plot_runs

    out = check_output_file(args.out, "--out", (".png", ".svg", ".pdf"), "end the name with .png, .svg or .pdf")
    curves = []
    for path, label in zip(args.runs, run_labels(args.runs, args.labels)):
        folder = Path(path)
        if not folder.is_dir():
            raise AttnlabError(f"{folder} is not a run folder (no such directory); see 'attnlab runs'")
        rows = read_metrics(folder)
        if not any("loss" in r or "val_loss" in r for r in rows):
            raise AttnlabError(f"{folder} has no losses to plot (metrics.jsonl is missing or empty); "
                               "train it first with 'attnlab train'")
        curves.append((label, rows))
    plot_runs(curves, out, title=args.title, log_y=args.log_y)
    print(f"wrote {out} ({len(curves)} run{'s' if len(curves) != 1 else ''})")
    return 0
