"""Truncated back-propagation through time: the objective of the recurrent language models.

The training text is cut into ``batch_size`` parallel streams; the batch at step ``s`` is the
``s``-th consecutive window of ``context_length`` tokens of every stream, and each stream's final
state is carried (detached) into its next window. Gradients flow back at most ``context_length``
steps; information flows forward without limit. The carried states are part of the trainer state,
so ``--resume`` continues bit for bit; under torchrun each rank carries its own streams' states and
a checkpoint merges every rank's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.data.batching import SPLIT_CODES
from attnlab.errors import AttnlabError


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a torch.compile and/or DistributedDataParallel wrapper."""
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


class _Streams:
    """One split's token ids laid out as ``batch_size`` contiguous streams cut into windows."""

    def __init__(self, ids: Tensor, batch_size: int, context_length: int, split: str) -> None:
        length = len(ids) // batch_size
        self.windows = (length - 1) // context_length
        if self.windows < 1:
            raise AttnlabError(
                f"the {split} split has {len(ids)} tokens: too few for {batch_size} parallel streams of at least "
                f"{context_length} + 1 tokens each; use a longer text, a smaller --batch-size or "
                "--set context_length=N"
            )
        self.context_length = context_length
        self.batch_size = batch_size
        self.starts = torch.arange(batch_size) * length
        self.ids = ids

    def window(self, index: int) -> tuple[Tensor, Tensor, int]:
        w = index % self.windows
        t = self.context_length
        if isinstance(self.ids, Tensor):
            offsets = self.starts.unsqueeze(1) + w * t + torch.arange(t + 1).unsqueeze(0)
            tokens = self.ids[offsets]
        else:  # memory-mapped shards: read only this window of every stream
            tokens = torch.from_numpy(self.ids.windows((self.starts + w * t).numpy(), t + 1))
        return tokens[:, :-1], tokens[:, 1:], w


class TBPTTObjective:
    """Next-token prediction with state carried across consecutive windows of parallel streams.

    ``batch(split, step, batch_size)`` returns ``x``, ``y`` (B, context_length) plus ``stream`` (which of the B
    streams each row is), ``window`` (which window of its stream) and ``split`` (a code), so that
    :meth:`loss` still finds each row's state after the trainer slices the batch for gradient
    accumulation or data parallelism. A training batch at step ``s`` is window ``s mod W`` of every
    stream (W windows per stream per epoch); evaluation batch ``-1 - i`` is window ``i mod W`` of the
    validation streams. A row starts from zeros at window 0, or when its stored state is not the
    one of the window just before (e.g. a first batch after a change of batch size).
    """

    def __init__(self, train_ids: Tensor, val_ids: Tensor, context_length: int, seed: int = 0) -> None:
        self.data = {split: ids.long() if isinstance(ids, Tensor) else ids  # tensors, or memory-mapped shards
                     for split, ids in (("train", train_ids), ("val", val_ids))}
        self.context_length = context_length
        self.seed = seed  # batches are a pure function of (split, step): the seed is not needed
        self._streams: dict[str, _Streams] = {}
        self._state: dict[str, dict[str, Tensor]] = {}  # split -> {"h", ["c"], "next_window"}
        self._pending: dict[str, Tensor] = {}  # train state loaded before the first batch

    # ---- batches -------------------------------------------------------------------------------
    def streams(self, split: str, batch_size: int) -> _Streams:
        current = self._streams.get(split)
        if current is None or current.batch_size != batch_size:
            current = self._streams[split] = _Streams(self.data[split], batch_size, self.context_length, split)
        return current

    def batch(self, split: str, step: int, batch_size: int) -> dict[str, Tensor]:
        streams = self.streams(split, batch_size)
        index = step if step >= 0 else -1 - step
        x, y, w = streams.window(index)
        return {"x": x, "y": y, "stream": torch.arange(batch_size), "window": torch.full((batch_size,), w),
                "split": torch.full((batch_size,), SPLIT_CODES[split])}

    def count_tokens(self, batch: dict[str, Tensor]) -> int:
        return batch["x"].numel()

    # ---- carried state --------------------------------------------------------------------------
    def _store(self, split: str, model: nn.Module, streams: int, device: torch.device) -> dict[str, Tensor]:
        store = self._state.get(split)
        if store is None or store["h"].shape[1] != streams or store["h"].device != device:
            zero = unwrap(model).init_state(streams)
            zeros = zero if isinstance(zero, tuple) else (zero,)
            store = {name: z.to(device) for name, z in zip(("h", "c"), zeros)}
            store["next_window"] = torch.full((streams,), -1, dtype=torch.long, device=device)
            if split == "train" and self._pending:
                pending = self._pending
                if all(k in pending and pending[k].shape == store[k].shape for k in store):
                    store = {k: pending[k].to(device) for k in store}
                self._pending = {}
            self._state[split] = store
        return store

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        x, y = batch["x"], batch["y"]
        split = next(name for name, code in SPLIT_CODES.items() if code == int(batch["split"][0]))
        if split not in self._streams:
            raise AttnlabError("TBPTTObjective.loss needs a batch made by TBPTTObjective.batch")
        streams = self._streams[split]
        store = self._store(split, model, streams.batch_size, x.device)
        rows = batch["stream"].to(x.device)
        window = batch["window"].to(x.device)
        carry = (store["next_window"][rows] == window) & (window > 0)
        keep = carry.view(1, -1, 1).to(store["h"].dtype)
        names = ("h", "c") if "c" in store else ("h",)
        start = tuple(store[n][:, rows] * keep for n in names)
        state = start if len(start) == 2 else start[0]
        logits, final = model(x, state, return_state=True)
        finals = final if isinstance(final, tuple) else (final,)
        with torch.no_grad():
            for name, value in zip(names, finals):
                store[name][:, rows] = value.detach().to(store[name].dtype)
            store["next_window"][rows] = (window + 1) % streams.windows
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))

    # the stream (batch row) dimension of each state tensor: a rank updates only its own rows
    state_batch_dims = {"h": 1, "c": 1, "next_window": 0}

    def state_tensors(self) -> dict[str, Tensor]:
        """The training streams' carried states (for an exact resume)."""
        store = self._state.get("train")
        if store is None:
            return {k: v.clone() for k, v in self._pending.items()}
        return {k: v.detach().cpu().clone() for k, v in store.items()}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        self._state.pop("train", None)
        self._pending = {k: v.clone() for k, v in tensors.items()}
