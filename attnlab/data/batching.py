"""Language-model batches: random windows of a token stream, a pure function of (seed, split, step).

For a window starting at ``i``: inputs ``x = ids[i : i+T]``, targets ``y = ids[i+1 : i+T+1]``, so
position ``t`` learns to predict token ``t+1`` from tokens ``0..t``. Because every batch is drawn
from a generator seeded by ``(seed, split, step)``, a resumed run draws exactly the batches the
uninterrupted run would have drawn.

The token streams may be tensors (a corpus in memory) or memory-mapped
:class:`~attnlab.data.shards.TokenShards` (a prepared folder, see :mod:`attnlab.data.lm_data`): a
batch then reads only its windows from the shards and converts them to int64. Starts are drawn by
the same generator from the same length, so the same tokens give the same batches either way.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError

SPLIT_CODES = {"train": 1, "val": 2, "test": 3}


def batch_generator(seed: int, split: str, step: int) -> torch.Generator:
    """A fresh generator for batch ``step`` of ``split`` (negative steps: the fixed eval batches)."""
    mixed = (seed * 1_000_003 + SPLIT_CODES[split] * 7_919 + step * 104_729) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


class TokenStream(Protocol):
    """What a non-tensor token stream offers: a length and int64 windows (``TokenShards`` does)."""

    def __len__(self) -> int: ...

    def windows(self, starts: Any, length: int) -> Any: ...


def _tokens(ids: Any) -> Tensor | TokenStream:
    if isinstance(ids, Tensor):
        return ids.long()
    if hasattr(ids, "windows") and hasattr(ids, "__len__"):
        return ids
    return torch.as_tensor(ids, dtype=torch.long)


class LanguageModelObjective:
    """Next-token prediction on random windows of the train / validation token streams."""

    def __init__(self, train_ids: Tensor | TokenStream, val_ids: Tensor | TokenStream, context_length: int,
                 seed: int = 0) -> None:
        self.data = {"train": _tokens(train_ids), "val": _tokens(val_ids)}
        self.context_length = context_length
        self.seed = seed
        for split, ids in self.data.items():
            if len(ids) < context_length + 2:
                raise AttnlabError(
                    f"the {split} split has {len(ids)} tokens, fewer than one context of {context_length} + 1: "
                    f"use a longer text or a smaller context (--set context_length=N)"
                )

    def batch(self, split: str, step: int, batch_size: int) -> dict[str, Tensor]:
        ids = self.data[split]
        t = self.context_length
        starts = torch.randint(len(ids) - t - 1, (batch_size,), generator=batch_generator(self.seed, split, step))
        if isinstance(ids, Tensor):
            windows = ids[starts.unsqueeze(1) + torch.arange(t + 1).unsqueeze(0)]
        else:  # memory-mapped shards: read just these windows
            windows = torch.from_numpy(ids.windows(starts.numpy(), t + 1))
        return {"x": windows[:, :-1], "y": windows[:, 1:]}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["x"])
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch["y"].reshape(-1))

    def count_tokens(self, batch: dict[str, Tensor]) -> int:
        return batch["x"].numel()
