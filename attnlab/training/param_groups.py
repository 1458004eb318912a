"""Which parameters decay, and whether PyTorch's fused optimizer step applies (shared by AdamW and Muon).

Weight decay shrinks weights toward zero: ``w <- w - lr * wd * w`` (decoupled, AdamW). It makes sense
for the matrices that mix features (linear layers, embeddings), not for biases and norm gains,
whose scale is meaningful; those go in a group with ``weight_decay = 0``.
"""

from __future__ import annotations

from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: tensors of 2 or more dimensions decay, the rest (biases, gains) do not."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for _, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    return [g for g in groups if g["params"]]


def use_fused(model: nn.Module) -> bool | None:
    """True where PyTorch has a fused (one kernel for every tensor) AdamW for the model's device.

    On a CPU the fused step measured 5x faster than the default multi-tensor one for a 10M-parameter
    GPT (9 vs 47 ms); on CUDA it saves a launch per tensor. None leaves the choice to PyTorch.
    """
    devices = {p.device.type for p in model.parameters()}
    return True if len(devices) == 1 and devices <= {"cpu", "cuda"} else None
