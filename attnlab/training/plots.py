"""Loss curves as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (window 1 = unchanged)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_runs(runs: list[tuple[str, list[dict[str, Any]]]], out: str | Path, title: str = "loss",
              log_y: bool = False) -> Path:
    """Train (thin) and validation (markers) loss of one or more runs on one figure, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnlab.io import write_atomic

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate(runs):
        color = colors[i % len(colors)]
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
        if train:
            steps, losses = zip(*train)
            window = max(1, len(losses) // 50)
            ax.plot(steps, smooth(list(losses), window), color=color, alpha=0.55, linewidth=1,
                    label=f"{label} train" if len(runs) > 1 else "train")
        if val:
            steps, losses = zip(*val)
            ax.plot(steps, losses, color=color, marker="o", markersize=3, linewidth=1.8,
                    label=f"{label} validation" if len(runs) > 1 else "validation (held out)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    write_atomic(out, lambda tmp: fig.savefig(tmp, format=out.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return out
