"""Data parallelism through PyTorch's own engine, set up from torchrun's environment.

``torchrun --nproc_per_node N -m attnlab train gpt ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set (multi-node: add torchrun's ``--nnodes`` and rendezvous
flags; nothing here changes). Each process joins one process group (gloo on CPU, NCCL on CUDA).

- **DDP** (default): every rank holds the whole model; ``backward`` all-reduces (averages) the
  gradients, so after each step the weights are identical on every rank. With gradient
  accumulation the inner micro-steps skip the all-reduce (``no_sync``).
- **FSDP** (``--fsdp``): the model is sharded with ``fully_shard`` (PyTorch's FSDP2), one unit
  per Transformer block plus the root. Each parameter becomes a ``DTensor`` holding one slice per
  rank; forward gathers the slices, backward reduce-scatters the gradients, the optimizer updates
  only the local slice. Checkpoints gather every tensor back (a collective: every rank must call
  :func:`full_state_dict` / :func:`full_optimizer_state`), so on disk an FSDP run looks exactly like
  a single-process run, and any number of ranks can resume it.

Outside torchrun everything here is a no-op. Setting ``ATTNLAB_DIST_DEBUG=DIR`` makes each rank
append one JSON line per step to ``DIR/rank<R>.jsonl`` with a fingerprint of the batch slice it
trained on and of the full parameters after the step (the distributed tests read these).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab import devices
from attnlab.errors import AttnlabError

DEBUG_ENV = "ATTNLAB_DIST_DEBUG"


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``--device`` as a ``torch.device`` (see :func:`attnlab.devices.resolve_device`)."""
    return devices.resolve_device(name, local_rank)


def configure_cuda() -> None:
    """Fast defaults on NVIDIA GPUs.

    - TF32 tensor cores for float32 matmuls and convolutions: bfloat16 autocast (``--dtype
      bfloat16``) is unaffected; float32 runs trade the last mantissa bits for several times the
      matmul speed, as nanoGPT does.
    - ``scaled_dot_product_attention`` picks FlashAttention whenever it can (16-bit inputs, no
      explicit mask), else the memory-efficient kernel; the cuDNN kernel is left out of the choice
      so that the kernel in use does not change with the PyTorch version
      (``benchmarks/sdpa_backend.py`` shows which one runs).
    """
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def setup(device: str) -> DistInfo:
    """Join the process group when launched by torchrun, else describe a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        dev = resolve_device(device)
        if dev.type == "cuda":
            configure_cuda()
        return DistInfo(device=dev)
    import torch.distributed as dist

    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise AttnlabError("WORLD_SIZE is set but RANK is not: launch several processes with torchrun"
                           ) from None
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        configure_cuda()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, enabled=True)


def check_batch_split(batch_size: int, grad_accum: int, info: DistInfo) -> None:
    """The global batch is cut into ``world_size x grad_accum`` equal slices: it must divide."""
    parts = info.world_size * grad_accum
    if batch_size % parts:
        raise AttnlabError(
            f"--batch-size {batch_size} cannot be split evenly over {info.world_size} process(es) x "
            f"{grad_accum} accumulation step(s); use a multiple of {parts}"
        )


# ---- wrapping ----------------------------------------------------------------------------------
def wrap(model: nn.Module, info: DistInfo, fsdp: bool = False) -> nn.Module:
    """DDP (or FSDP2 ``fully_shard``) around ``model`` under torchrun; ``model`` itself otherwise.

    ``fully_shard`` changes ``model`` in place (its parameters become DTensors), so build the
    optimizer after calling this.
    """
    if not info.enabled:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        broadcast_from_rank0(model)  # DDP does this itself; fully_shard keeps whatever each rank has
        mesh = _device_mesh(info)
        for block in getattr(model, "blocks", None) or []:  # one unit per block: gathered one at a time
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def broadcast_from_rank0(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers, so that all start from the same model."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def _device_mesh(info: DistInfo):
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(info.device.type, (info.world_size,))


def unwrap(model: nn.Module) -> nn.Module:
    """The module under ``torch.compile`` and DDP wrappers (an FSDP2 module is its own model)."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model) if type(model).__name__ == "DistributedDataParallel" else model


def is_sharded(model: nn.Module) -> bool:
    """True when ``model`` (or what it wraps) was sharded with ``fully_shard``."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without distributed support
        return False
    return isinstance(unwrap(model), FSDPModule)


def _is_dtensor(value: Any) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, DTensor)


def _full(value: Any) -> Any:
    """A DTensor gathered into one ordinary tensor on the CPU (a collective); anything else as it is."""
    if _is_dtensor(value):
        return value.full_tensor().cpu()
    return value


def _shard_like(full: torch.Tensor, like: Any) -> torch.Tensor:
    """Cut the whole tensor ``full`` the way DTensor ``like`` is cut; this rank keeps its slice."""
    from torch.distributed.tensor import distribute_tensor

    full = full.to(device=like.device, dtype=like.dtype)
    try:  # every rank read the same file, so no rank needs to send anything
        return distribute_tensor(full, like.device_mesh, like.placements, src_data_rank=None)
    except TypeError:  # older torch: scatter from rank 0
        return distribute_tensor(full, like.device_mesh, like.placements)


# ---- training-step helpers ---------------------------------------------------------------------
@contextlib.contextmanager
def maybe_no_sync(model: nn.Module, info: DistInfo, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce / reduce-scatter on inner micro-steps of gradient accumulation.

    Run both the forward and the ``backward`` of a micro-step inside this context.
    """
    inner = unwrap(model)
    if not info.enabled:
        yield
    elif is_sharded(inner):
        inner.set_requires_gradient_sync(sync)
        yield
    elif not sync and hasattr(inner, "no_sync"):
        with inner.no_sync():
            yield
    else:
        yield


def mean_across_ranks(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def merge_rank_rows(tensors: dict[str, torch.Tensor], batch_dims: dict[str, int],
                    info: DistInfo) -> dict[str, torch.Tensor]:
    """Per-row state kept by each rank for its own rows of the global batch, merged into one whole.

    Each rank trains on rows ``[r n / W, (r + 1) n / W)`` of every global batch of ``n`` rows
    (:func:`attnlab.training.trainer.slice_batch`) and so holds up-to-date per-row state (say, the
    hidden state an RNN carries from one window of its stream to the next) for those rows only. For
    each tensor whose batch dimension ``batch_dims`` names, every rank keeps its own rows, zeroes the
    others, and a sum across ranks assembles the whole: the same dict on every rank (a collective:
    every rank must call it). Tensors not in ``batch_dims`` pass through unchanged.
    """
    if not info.enabled or info.world_size == 1:
        return tensors
    import torch.distributed as dist

    merged = dict(tensors)
    for name in sorted(set(tensors) & set(batch_dims)):  # the same order on every rank
        value, dim = tensors[name], batch_dims[name]
        rows = value.shape[dim] // info.world_size
        mine = torch.zeros(value.shape[dim], dtype=torch.bool)
        mine[info.rank * rows : (info.rank + 1) * rows] = True
        shape = [1] * value.dim()
        shape[dim] = -1
        total = torch.where(mine.view(shape), value, torch.zeros((), dtype=value.dtype)).to(info.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        merged[name] = total.to(value.device)
    return merged


def clip_grad_norm(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the global gradient norm to ``max_norm``; returns the norm before clipping (a tensor,
    left on the device so that no step waits for the GPU here).

    Under FSDP the gradients are DTensor slices and PyTorch's clip computes the norm over all of
    them (an all-reduce), so every rank scales by the same factor.
    """
    return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


# ---- checkpoints -------------------------------------------------------------------------------
def full_state_dict(model: nn.Module, raw: nn.Module, info: DistInfo) -> dict[str, torch.Tensor] | None:
    """The whole model's weights, gathered from every rank under FSDP; None = use ``raw`` as it is.

    Under FSDP this is a collective: every rank must call it, in the same order.
    """
    if not is_sharded(model):
        return None
    return {name: _full(value) for name, value in unwrap(model).state_dict().items()}


def full_optimizer_state(model: nn.Module, raw: nn.Module, optimizer: torch.optim.Optimizer,
                         info: DistInfo) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every DTensor gathered whole (a collective under FSDP).

    The result is keyed by parameter index exactly like a single-process optimizer's, so it does
    not depend on how many ranks wrote it.
    """
    state = optimizer.state_dict()
    if not is_sharded(model):
        return state
    gathered = {}
    for index in sorted(state["state"]):  # the same order on every rank
        gathered[index] = {name: _full(value) for name, value in state["state"][index].items()}
    return {"state": gathered, "param_groups": state["param_groups"]}


def load_full_state(model: nn.Module, raw: nn.Module, weights: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, optimizer_state: dict[str, Any]) -> None:
    """Load whole (unsharded) weights and optimizer state, as saved, into a possibly sharded model.

    Raises ``RuntimeError`` / ``KeyError`` / ``ValueError`` when the checkpoint does not fit.
    """
    if not is_sharded(model):
        raw.load_state_dict(weights, strict=True)
        optimizer.load_state_dict(optimizer_state)
        return
    target = unwrap(model).state_dict()
    missing, unexpected = sorted(set(target) - set(weights)), sorted(set(weights) - set(target))
    if missing or unexpected:
        raise RuntimeError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    with torch.no_grad():
        for name, tensor in target.items():
            source = weights[name]
            if tuple(source.shape) != tuple(tensor.shape):
                raise RuntimeError(f"{name}: shape {tuple(source.shape)} in the checkpoint, "
                                   f"{tuple(tensor.shape)} in the model")
            tensor.copy_(_shard_like(source, tensor) if _is_dtensor(tensor) else source)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sharded_state: dict[int, dict[str, Any]] = {}
    for index, entries in optimizer_state["state"].items():
        param = params[int(index)]
        sharded_state[index] = {
            name: (_shard_like(value, param) if _is_dtensor(param) and isinstance(value, torch.Tensor)
                   and tuple(value.shape) == tuple(param.shape) else value)
            for name, value in entries.items()
        }
    optimizer.load_state_dict({"state": sharded_state, "param_groups": optimizer_state["param_groups"]})


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


# ---- debugging ---------------------------------------------------------------------------------
def tensor_fingerprint(tensors: list[torch.Tensor]) -> str:
    """SHA-256 (16 hex digits) of the bytes of ``tensors``, in order: equal iff bitwise equal."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def debug_record(info: DistInfo, model: nn.Module, step: int, batch: dict[str, torch.Tensor]) -> None:
    """With ``ATTNLAB_DIST_DEBUG=DIR`` set: append this rank's batch and parameter fingerprints.

    Under FSDP the parameters are gathered first (a collective), so every rank must call it;
    torchrun gives every rank the same environment, so they all do.
    """
    folder = os.environ.get(DEBUG_ENV)
    if not folder:
        return
    params = [_full(p) for p in unwrap(model).parameters()]
    row = {"step": step, "rank": info.rank, "world_size": info.world_size,
           "batch": tensor_fingerprint([batch[k] for k in sorted(batch)]),
           "batch_rows": int(next(iter(batch.values())).shape[0]),
           "params": tensor_fingerprint(params)}
    path = Path(folder) / f"rank{info.rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
