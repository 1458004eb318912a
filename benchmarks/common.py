"""Shared pieces of attnlab's benchmarks: the machine, interleaved timing, JSON results, tables.

Timings on a shared machine wander, so every benchmark here runs its candidates in turns (A B C,
C B A, A B C, ...) and reports the median per candidate, and records the load average before and
after so that a reader knows how busy the machine was.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "device": device,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def describe(info: dict[str, Any]) -> str:
    """One line for BENCHMARKS.md: the machine and how loaded it was."""
    where = info.get("gpu") or f"{info['cpu']}, {info['cores']} cores, torch threads: {info['torch_threads']}"
    load = info.get("load_average")
    load_text = ""
    if load:
        busy = load[0] > (info.get("cores") or 1)
        load_text = f"; load average {load[0]:.1f} at the start"
        load_text += " (busy: shared with other jobs)" if busy else ""
    return f"{where}, torch {info['torch']}{load_text}"


def report(name: str, title: str | None, result: dict[str, Any], markdown: Callable[[dict[str, Any]], str],
           out: str | Path | None = None) -> dict[str, Any]:
    """Print the title and the machine (unless ``title`` is None: a benchmark that printed them before
    its progress lines), then the table of ``result``; write its JSON; return it."""
    if title is not None:
        print(f"{title}\n{describe(result['machine'])}\n")
    print(markdown(result))
    print(f"\nwrote {write_result(name, result, out)}")
    return result


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in torch (None: leave torch's default, one per core)."""
    if threads:
        torch.set_num_threads(threads)


def sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(candidates: dict[str, Callable[[], Any]], rounds: int, device: str = "cpu",
                warmup: int = 1, calls: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each candidate: ``rounds`` samples each, taken in alternating order."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    sync(device)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            fn = candidates[name]
            sync(device)
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            sync(device)
            samples[name].append((time.perf_counter() - start) / calls)
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_result(name: str, data: dict[str, Any], out: str | Path | None = None) -> Path:
    """``benchmarks/results/<name>.json`` (or ``out``), written atomically."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_result(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def random_tokens(vocab: int, shape: tuple[int, ...], seed: int = 0, device: str = "cpu") -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed)).to(device)
