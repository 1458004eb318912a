"""Progress of a whole plan: which run, how many are done, and when the plan should end.

The outer bar counts runs; each run's own bar (the trainer's) shows its steps. The ETA of the plan
is the time the remaining runs are expected to take: their budget when they have one, else the mean
wall time of the runs trained so far in this session.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlanProgress:
    """An outer progress bar over the runs of a plan (silent when ``enabled`` is False)."""

    def __init__(self, title: str, estimates: list[float | None], enabled: bool = True) -> None:
        self.title = title
        self.estimates = estimates  # expected wall seconds per run (None: unknown)
        self.enabled = enabled
        self.done: set[int] = set()
        self.walls: list[float] = []  # wall time of runs trained (not skipped) in this session
        self.started = time.perf_counter()
        self._run_start = self.started
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(estimates), desc=title, unit="run", position=0, leave=True,
                            dynamic_ncols=True,
                            bar_format="{desc}: {n_fmt}/{total_fmt} runs |{bar}| {postfix}",
                            mininterval=0.5 if sys.stderr.isatty() else 15.0)

    def eta(self) -> float | None:
        """Expected seconds until the plan ends (None when nothing is known yet)."""
        mean = sum(self.walls) / len(self.walls) if self.walls else None
        total = 0.0
        for i, estimate in enumerate(self.estimates):
            if i in self.done:
                continue
            guess = estimate if estimate is not None else mean
            if guess is None:
                return None
            total += guess
        return total

    def _postfix(self, now: str) -> str:
        eta = self.eta()
        elapsed = format_seconds(time.perf_counter() - self.started)
        return f"{now} | elapsed {elapsed}" + (f", ETA {format_seconds(eta)}" if eta is not None else "")

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)

    def start(self, index: int, label: str) -> None:
        self._run_start = time.perf_counter()
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(f"now {index + 1}/{len(self.estimates)}: {label}"))
            self.message(f"[{index + 1}/{len(self.estimates)}] {label}")

    def skip(self, index: int, label: str) -> None:
        self.done.add(index)
        if self.bar is not None:
            self.bar.update(1)
            self.message(f"[{index + 1}/{len(self.estimates)}] {label}: finished earlier, skipped")

    def finish(self, index: int, label: str, summary: str = "") -> None:
        self.done.add(index)
        wall = time.perf_counter() - self._run_start
        self.walls.append(wall)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(self._postfix(f"last: {label}"))
            self.message(f"[{index + 1}/{len(self.estimates)}] {label} done in {format_seconds(wall)}"
                         + (f": {summary}" if summary else ""))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
