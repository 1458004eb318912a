"""``attnlab runs``: list trained runs and their best validation loss."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("runs", help="list trained runs with their best validation loss",
                              description="List run folders under ROOT (default runs/).")
    p.add_argument("root", nargs="?", default="runs", help="folder to search (default runs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from attnlab.runs import find_runs

    rows = find_runs(args.root)
    if not rows:
        print(f"no runs under {args.root}/ yet: train one with 'attnlab train gpt'")
        return 0
    table = Table(title=f"runs under {args.root}/")
    for col in ("run", "kind", "data", "step", "best val loss"):
        table.add_column(col, justify="right" if col in ("step", "best val loss") else "left")
    for r in rows:
        table.add_row(r["run"], str(r["kind"]), str(r["data"]), str(r["step"]), f"{r['best_val_loss']:.4f}")
    Console().print(table)
    return 0
