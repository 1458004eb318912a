"""Optimizers: AdamW with weight decay on matrices only.

Weight decay shrinks weights toward zero: ``w <- w - lr * wd * w`` (decoupled, AdamW). It makes sense
for the matrices that mix features (linear layers, embeddings), not for biases and norm gains,
whose scale is meaningful; those go in a group with ``weight_decay = 0``.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.training.param_groups import parameter_groups, use_fused


def build_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer``; every group records its base ``lr_scale``."""
    if config.optimizer == "adamw":
        groups = parameter_groups(model, config.weight_decay)
        for g in groups:
            g["lr_scale"] = 1.0
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), fused=use_fused(model))
    if config.optimizer == "muon":
        from attnlab.training.muon import build_muon

        return build_muon(model, config)
    raise AttnlabError(f"unknown optimizer {config.optimizer!r}; choose adamw or muon")
