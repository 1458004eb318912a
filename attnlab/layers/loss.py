"""Cross-entropy over the real tokens of a padded batch, optionally label-smoothed.

    q(k)  = (1 - eps) [k = y_t] + eps / V                      label smoothing (eps = 0: one-hot)
    loss  = sum_t m_t (- sum_k q(k) log P(k | ...)) / sum_t m_t

``m_t`` is 1 at real target tokens and 0 at padding, so padding never counts.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor, smoothing: float = 0.0) -> Tensor:
    """Mean (label-smoothed when ``smoothing > 0``) cross-entropy over positions where ``mask`` is true."""
    flat = logits.float().reshape(-1, logits.size(-1))
    losses = F.cross_entropy(flat, targets.reshape(-1), reduction="none", label_smoothing=smoothing)
    weight = mask.reshape(-1).to(losses.dtype)
    return (losses * weight).sum() / weight.sum().clamp(min=1.0)
