"""Data parallelism through PyTorch's own engine, set up from torchrun's environment.

``torchrun --nproc_per_node N -m attnlab train gpt ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each joins one process group (gloo on CPU, NCCL on CUDA), the
model is wrapped in DistributedDataParallel (or FullyShardedDataParallel with ``--fsdp``), and
gradients are averaged across ranks in ``backward``. Outside torchrun everything here is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from attnlab.errors import AttnlabError


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
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AttnlabError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise AttnlabError("--device mps was asked for, but MPS is not available here")
        return torch.device("mps")
    if name != "cpu":
        raise AttnlabError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto")
    return torch.device("cpu")


def setup(device: str) -> DistInfo:
    """Join the process group when launched by torchrun, else describe a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=resolve_device(device))
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, enabled=True)


def wrap(model: nn.Module, info: DistInfo, fsdp: bool = False) -> nn.Module:
    if not info.enabled:
        return model
    if fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel(model, use_orig_params=True,
                                        device_id=info.device if info.device.type == "cuda" else None)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)


def maybe_no_sync(model: nn.Module, info: DistInfo, sync: bool):
    """Skip the gradient all-reduce on inner micro-steps of gradient accumulation."""
    if info.enabled and not sync and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def mean_across_ranks(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def clip_grad_norm(model: nn.Module, max_norm: float) -> None:
    if hasattr(model, "clip_grad_norm_"):  # FSDP: norms over shards
        model.clip_grad_norm_(max_norm)
    else:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def is_fsdp(model: nn.Module) -> bool:
    return type(model).__name__ == "FullyShardedDataParallel"


def full_state_dict(model: nn.Module, raw: nn.Module, info: DistInfo):
    """The whole model's weights (gathered from every rank under FSDP); None = use ``raw`` as it is."""
    if not is_fsdp(model):
        return None
    from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel, StateDictType

    cfg = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)
    with FullyShardedDataParallel.state_dict_type(model, StateDictType.FULL_STATE_DICT, cfg):
        return model.state_dict()


def full_optimizer_state(model: nn.Module, raw: nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo):
    if not is_fsdp(model):
        return optimizer.state_dict()
    raise AttnlabError("saving optimizer state under --fsdp is not supported yet")


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
