"""Figures of the experiments (PNG, matplotlib without a display, written atomically)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _figure(panels: int = 1, width: float = 8.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width, 4.6), dpi=110, squeeze=False)
    return fig, list(axes[0])


def _save(fig: Any, out: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from attnlab.io import write_atomic

    out = Path(out)
    fig.tight_layout()
    write_atomic(out, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return out


def plot_validation_vs_time(curves: Sequence[tuple[str, list[list[float]]]], out: str | Path, title: str,
                            ylabel: str = "validation loss (nats/token)") -> Path:
    """Validation loss against seconds of training, one line per model (``[step, time, loss]`` points)."""
    fig, (ax,) = _figure()
    for label, points in curves:
        points = [p for p in points if p[1] is not None]
        if points:
            ax.plot([p[1] for p in points], [p[2] for p in points], marker="o", markersize=3, linewidth=1.6,
                    label=label)
    ax.set_xlabel("training time (s, optimizer steps only)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_length_curves(curves: Sequence[tuple[str, dict[str, dict[str, float]]]], ks: Sequence[int],
                       out: str | Path, title: str) -> Path:
    """Exact match (left) and character error rate (right) against the number of dates per source."""
    fig, (left, right) = _figure(panels=2, width=11.0)
    markers = "osD^vP*X"
    for i, (label, by_k) in enumerate(curves):
        xs = [k for k in ks if str(k) in by_k]
        if not xs:
            continue
        style = dict(marker=markers[i % len(markers)], markersize=5, linewidth=1.6, label=label,
                     linestyle="--" if "attention" not in label.lower() and "transformer" not in label.lower()
                     and "bahdanau" not in label.lower() else "-")
        left.plot(xs, [100 * by_k[str(k)]["exact_match"] for k in xs], **style)
        right.plot(xs, [100 * by_k[str(k)]["cer"] for k in xs], **style)
    for ax, name in ((left, "exact match (%)"), (right, "character error rate (%)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(ks), [str(k) for k in ks])
        ax.set_xlabel("dates per source sentence (k)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    left.set_ylim(-2, 102)
    right.set_ylim(bottom=0)
    left.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, out)
