"""``attnlab runs [ROOT] [--plain]``: list trained runs and their best validation loss."""

from __future__ import annotations

import argparse

DEFAULT_ROOT = "runs"
COLUMNS = ("run", "kind", "data", "step", "best val loss")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "runs", help="list trained runs with their best validation loss",
        description="List the run folders under ROOT (default runs/) with their kind, data, last step and best "
                    "validation loss. Paths are printed in full, however long. --plain prints one run a line, "
                    "tab-separated, with no header and no table: run, kind, data, step, best val loss.")
    p.add_argument("root", nargs="?", default=None, help=f"folder to search (default {DEFAULT_ROOT})")
    p.add_argument("--plain", action="store_true",
                   help="tab-separated lines for scripts (run, kind, data, step, best val loss), no table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from attnlab.errors import AttnlabError
    from attnlab.runs import find_runs

    root = Path(args.root or DEFAULT_ROOT)
    if args.root is not None and not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise AttnlabError(f"{args.root} {what}; give the folder that holds your runs (default {DEFAULT_ROOT}/)")
    rows = find_runs(root)
    if not rows:
        print(f"no runs under {root}/ yet: train one with 'attnlab train gpt'",
              file=sys.stderr if args.plain else sys.stdout)
        return 0
    cells = [[r["run"], str(r["kind"]), str(r["data"]), str(r["step"]), f"{r['best_val_loss']:.4f}"] for r in rows]
    if args.plain:
        for row in cells:
            print("\t".join(_one_line(c) for c in row))
        return 0
    _print_table(f"runs under {root}/", cells)
    return 0


def _one_line(cell: str) -> str:
    """A cell with no tab or newline in it, so that each run stays one line of tab-separated fields."""
    return cell.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _print_table(title: str, cells: list[list[str]]) -> None:
    """A table whose cells are never cut: as wide as it needs when written to a file or a pipe;
    on a terminal narrower than that, long cells fold onto more lines instead of ending in '...'."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in COLUMNS:
        numeric = col in ("step", "best val loss")
        table.add_column(col, justify="right" if numeric else "left", overflow="fold", no_wrap=numeric)
    for row in cells:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        needed = console.measure(table, options=console.options.update_width(100_000)).maximum
        console = Console(width=max(console.width, needed))
    console.print(table)
