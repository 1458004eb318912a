"""Learning-rate schedules, as a pure function of the step (so resuming needs no scheduler state).

cosine:       lr(s) = lr * s / W                                          for s < W (linear warm-up)
              lr(s) = min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2     p = (s - W) / (S - W)
inverse_sqrt: lr(s) = lr * min(s / W, sqrt(W / s))   (Vaswani et al. 2017: the peak lr is reached at W)
constant:     lr(s) = lr after the warm-up.

The cosine floor ``min_lr`` must be below the peak ``lr``: the attention overview's experiment set it above, so
its "decay" was a rise; attnlab refuses that configuration.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "inverse_sqrt", "constant")


def learning_rate(step: int, *, lr: float, min_lr: float, warmup_steps: int, total_steps: int,
                  schedule: str = "cosine") -> float:
    """Learning rate for optimizer step ``step`` (0-based)."""
    s = step + 1
    if schedule == "inverse_sqrt":
        w = max(warmup_steps, 1)
        return lr * min(s / w, math.sqrt(w / s))
    if warmup_steps and s <= warmup_steps:
        return lr * s / warmup_steps
    if schedule == "constant":
        return lr
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    span = max(total_steps - warmup_steps, 1)
    progress = min(max((s - warmup_steps) / span, 0.0), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
