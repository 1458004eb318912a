"""Muon for the hidden matrices, AdamW for everything else (``--optimizer muon``).

Muon (Jordan et al. 2024) takes the momentum of a 2-D weight's gradient and replaces it by the
nearest semi-orthogonal matrix (a few Newton-Schulz iterations), so every direction of the update
moves by the same amount. It suits the matrices inside the blocks; embeddings, the output head,
norm gains and biases stay with AdamW. The two optimizers travel as one object so the trainer,
its schedule and its checkpoints do not need to know there are two: every group carries an
``lr_scale`` (Muon's groups: ``muon_lr / lr``), and the schedule multiplies it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

HIDDEN_SUFFIXES = ("attn.qkv.weight", "attn.proj.weight", "attn.q.weight", "attn.kv.weight", "mlp.fc.weight",
                   "mlp.proj.weight", "mlp.gate.weight")


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(hidden matrices for Muon, other matrices for AdamW with decay, vectors for AdamW without decay).

    Every trainable parameter lands in exactly one list (tied weights once).
    """
    muon, decay, no_decay, seen = [], [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if p.dim() == 2 and name.endswith(HIDDEN_SUFFIXES):
            muon.append(p)
        elif p.dim() >= 2:
            decay.append(p)
        else:
            no_decay.append(p)
    return muon, decay, no_decay


class MuonWithAdamW(torch.optim.Optimizer):
    """One optimizer object over two: ``torch.optim.Muon`` and ``torch.optim.AdamW``."""

    def __init__(self, model: nn.Module, *, lr: float, muon_lr: float, weight_decay: float,
                 betas: tuple[float, float], momentum: float = 0.95) -> None:
        muon_params, decay, no_decay = split_parameters(model)
        self.parts: list[torch.optim.Optimizer] = []
        if muon_params:
            self.parts.append(torch.optim.Muon([{"params": muon_params, "lr_scale": muon_lr / lr, "name": "muon"}],
                                               lr=muon_lr, weight_decay=weight_decay, momentum=momentum))
        adam_groups = [{"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0, "name": "adamw_decay"},
                       {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0, "name": "adamw_no_decay"}]
        self.parts.append(torch.optim.AdamW([g for g in adam_groups if g["params"]], lr=lr, betas=betas))
        # deliberately not calling Optimizer.__init__: the parts own the state
        self.defaults = {}
        self.state = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [g for part in self.parts for g in part.param_groups]

    @param_groups.setter
    def param_groups(self, value) -> None:  # Optimizer internals may assign; the parts own them
        pass

    def step(self, closure=None):  # type: ignore[override]
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The parts' states merged, parameter indices offset so they stay distinct."""
        state, groups, offset = {}, [], 0
        for i, part in enumerate(self.parts):
            sd = part.state_dict()
            count = sum(len(g["params"]) for g in sd["param_groups"])
            state.update({index + offset: entry for index, entry in sd["state"].items()})
            for g in sd["param_groups"]:
                groups.append({**g, "params": [p + offset for p in g["params"]], "part": i})
            offset += count
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        offset = 0
        for i, part in enumerate(self.parts):
            groups = [g for g in state_dict["param_groups"] if g.get("part") == i]
            count = sum(len(g["params"]) for g in groups)
            local = {"state": {idx - offset: e for idx, e in state_dict["state"].items()
                               if offset <= int(idx) < offset + count},
                     "param_groups": [{k: v for k, v in g.items() if k != "part"} | {
                         "params": [p - offset for p in g["params"]]} for g in groups]}
            part.load_state_dict(local)
            offset += count


def build_muon(model: nn.Module, config) -> MuonWithAdamW:
    return MuonWithAdamW(model, lr=config.lr, muon_lr=config.muon_lr, weight_decay=config.weight_decay,
                         betas=(config.beta1, config.beta2))
