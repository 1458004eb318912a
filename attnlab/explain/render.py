"""How a walk-through is shown: rich tables in the terminal, markdown, or JSON; printed or written.

:func:`emit` shows a list of :class:`attnlab.explain.steps.Step` (a title, an explanation, a shape
and one or more tables of numbers). :func:`show` is the part every topic shares, ELIZA's included:
pick the format, print, or write the request's ``--out`` file atomically.

Numbers are printed with four decimals, as the attention overview prints them
(:func:`format_number`); the JSON keeps six. This module imports no PyTorch (ELIZA uses it too):
the steps' tensors are only read through ``.tolist()``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from attnlab.errors import AttnlabError

if TYPE_CHECKING:
    from rich.console import Console


class Step(Protocol):
    """What a shown step has (:class:`attnlab.explain.steps.Step` is the one kind; render needs no torch)."""

    title: str
    explanation: str
    rows: Sequence[str]
    columns: Sequence[str]
    shape: tuple[int, ...] | None
    panels: Sequence[str] | None
    decimals: int

    def tables(self) -> list[tuple[str | None, Any]]: ...

WIDE = 12
"""Rich tables with more columns than this (and fewer rows) are shown transposed."""


def format_number(value: float, decimals: int = 4) -> str:
    """Four decimals, like the attention overview prints; infinities as ``-inf`` / ``inf``; no ``-0.0000``."""
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    if math.isnan(value):
        return "nan"
    if round(value, decimals) == 0:
        value = 0.0
    return f"{value:.{decimals}f}"


def shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def json_values(values: Any) -> list:
    """A tensor as nested lists of floats rounded to 6 decimals; -inf/inf/nan become strings (valid JSON)."""

    def walk(item):
        if isinstance(item, list):
            return [walk(inner) for inner in item]
        item = round(item, 6)
        return item if math.isfinite(item) else format_number(item)

    return walk(values.tolist())


def step_json(step: Step, number: int) -> dict:
    """One step as ``{step, title, explanation, shape, rows, columns, values[, panels]}``."""
    item = {
        "step": number,
        "title": step.title,
        "explanation": step.explanation,
        "shape": list(step.shape),
        "rows": list(step.rows),
        "columns": list(step.columns),
        "values": json_values(step.values),
    }
    if step.values.dim() == 3:
        item["panels"] = [label for label, _ in step.tables()]
    return item


def to_json(steps: Sequence[Step]) -> str:
    return json.dumps([step_json(step, n) for n, step in enumerate(steps, start=1)], indent=2) + "\n"


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def to_markdown(heading: str, steps: Sequence[Step]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    out = [f"## {heading}", ""]
    for number, step in enumerate(steps, start=1):
        out += [
            f"### Step {number}. {step.title}",
            "",
            step.explanation,
            "",
            f"Shape: `{shape_text(step.shape)}`",
            "",
        ]
        for label, table in step.tables():
            if label is not None:
                out += [f"**{cell(label)}**", ""]
            out.append("| | " + " | ".join(cell(c) for c in step.columns) + " |")
            out.append("|---|" + "---:|" * len(step.columns))
            for row_label, row in zip(step.rows, table.tolist()):
                out.append(
                    f"| **{cell(row_label)}** | "
                    + " | ".join(format_number(v, step.decimals) for v in row)
                    + " |"
                )
            out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Rich
# --------------------------------------------------------------------------------------------


def print_rich(heading: str, steps: Sequence[Step], console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    console.rule(Text(heading, style="bold"))
    for number, step in enumerate(steps, start=1):
        console.print()
        console.print(Text(f"Step {number}. {step.title}", style="bold cyan"))
        console.print(Text(step.explanation))
        console.print(Text(f"shape {shape_text(step.shape)}", style="dim"))
        for label, table in step.tables():
            rows, columns = list(step.rows), list(step.columns)
            transposed = len(columns) > WIDE and len(rows) < len(columns)
            if transposed:
                table, rows, columns = table.T, columns, rows
            title = label
            if transposed:
                title = f"{label}, transposed to fit" if label else "(transposed to fit)"
            grid = Table(title=title, show_edge=False, pad_edge=False)
            grid.add_column("", style="bold", no_wrap=True)
            for column in columns:
                grid.add_column(Text(str(column)), justify="right", no_wrap=True)
            for row_label, row in zip(rows, table.tolist()):
                grid.add_row(Text(str(row_label)), *(format_number(v, step.decimals) for v in row))
            console.print(grid)


# --------------------------------------------------------------------------------------------
# Printing or writing
# --------------------------------------------------------------------------------------------


def write_out(text: str, out: str) -> None:
    """Write ``text`` to ``out`` atomically; a path that cannot be written is the user's error."""
    from attnlab.checkpoint import write_text_atomic

    try:
        write_text_atomic(out, text)
    except OSError as err:
        raise AttnlabError(f"cannot write {out}: {err.strerror or err}; pick another --out path") from err


def show(
    fmt: str | None,
    out: str | None,
    *,
    rich: Callable[[Console], None],
    markdown: Callable[[], str],
    as_json: Callable[[], str],
) -> None:
    """Render in ``fmt`` (rich, markdown, json; None means rich) and print it, or write it to ``out``.

    In a terminal, rich output gets the terminal's colours and width; piped, at least 120 columns;
    written to a file, 120 columns without colour codes.
    """
    from rich.console import Console

    fmt = fmt or "rich"
    if fmt == "json":
        text = as_json()
    elif fmt == "markdown":
        text = markdown()
    elif fmt == "rich":
        if out is None:
            console = Console(highlight=False)
            if not console.is_terminal:
                console = Console(highlight=False, width=max(console.width, 120))
            rich(console)
            return
        buffer = io.StringIO()
        rich(Console(file=buffer, width=120, color_system=None, highlight=False))
        text = buffer.getvalue()
    else:
        raise AttnlabError(f"unknown format {fmt!r}; use rich, markdown or json")
    if out is None:
        print(text, end="")
    else:
        write_out(text, out)


def emit(heading: str, steps: Sequence[Step], fmt: str | None = "rich", out: str | None = None) -> None:
    """Show ``steps`` under ``heading`` in ``fmt``: print them, or write them to ``out`` atomically."""
    show(
        fmt,
        out,
        rich=lambda console: print_rich(heading, steps, console),
        markdown=lambda: to_markdown(heading, steps) + "\n",
        as_json=lambda: to_json(steps),
    )
