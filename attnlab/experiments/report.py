"""Small helpers for the results folders: markdown tables, number formats, the machine line."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` (a config as a dict, say) with its tuples as lists and its paths as strings, for JSON."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; ``|`` and newlines inside cells are escaped."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " / ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def number(value: Any, digits: int = 3) -> str:
    """A float with ``digits`` decimals; '—' for missing or not-a-number."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def count(value: Any) -> str:
    """12,345 -> '12.3k', 1,234,567 -> '1.23M'."""
    if value is None:
        return "—"
    value = float(value)
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def percent(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def short(text: str, limit: int = 90) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def machine() -> str:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} CPU cores visible, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}")
