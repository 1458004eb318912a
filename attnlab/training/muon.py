"""Muon for the hidden matrices, AdamW for everything else (``--optimizer muon``).

Muon (Jordan et al. 2024) takes the (Nesterov) momentum ``M`` of a 2-D weight's gradient and moves
the weight along the nearest semi-orthogonal matrix instead, ``O = U V^T`` for ``M = U S V^T``, so
that every direction of the update moves by the same amount::

    B_t = mu B_{t-1} + (1 - mu) G_t                 (momentum, as torch.optim.Muon keeps it)
    M_t = (1 - mu) G_t + mu B_t                     (Nesterov)
    O_t = NS_5(M_t / ||M_t||_F)                     (five Newton-Schulz steps ~ U V^T)
    W_t = (1 - lr wd) W_{t-1} - lr sqrt(max(1, rows / cols)) O_t

Each Newton-Schulz step is ``X <- a X + (b A + c A^2) X`` with ``A = X X^T`` and
``(a, b, c) = (3.4445, -4.7750, 2.0315)``, in bfloat16. It suits the matrices inside the blocks;
embeddings, the output head, norm gains and biases stay with AdamW.

:class:`GroupedMuon` is ``torch.optim.Muon`` (same arguments, same state, same checkpoints, the same
update: tested equal) that runs the Newton-Schulz iteration once per set of same-shaped matrices
as a batched matmul instead of once per matrix; for the 4x4x128 GPT on one CPU thread that cuts the
Newton-Schulz time by about a third.

The two optimizers travel as one object, :class:`MuonWithAdamW`, so the trainer, its schedule and
its checkpoints do not need to know there are two: every group carries an ``lr_scale`` (Muon's
group: ``muon_lr / lr``) that the trainer multiplies the scheduled learning rate by.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.training.param_groups import use_fused

HIDDEN_SUFFIXES = ("attn.qkv.weight", "attn.proj.weight", "attn.q.weight", "attn.kv.weight", "mlp.fc.weight",
                   "mlp.proj.weight", "mlp.gate.weight")


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(hidden matrices for Muon, other matrices for AdamW with decay, vectors for AdamW without decay).

    Every trainable parameter lands in exactly one list (a tied weight once).
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


NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: Tensor, steps: int = 5, coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                  eps: float = 1e-7) -> Tensor:
    """Approximately orthogonalise each matrix of ``g`` ((N,) rows, cols; rows <= cols), in bfloat16."""
    a, b, c = coefficients
    x = g.bfloat16() if g.dim() == 3 else g.bfloat16().unsqueeze(0)
    x = x / x.flatten(1).norm(dim=1).clamp(min=eps)[:, None, None]
    for _ in range(steps):
        gram = torch.bmm(x, x.mT)
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x if g.dim() == 3 else x.squeeze(0)


class GroupedMuon(torch.optim.Muon):
    """``torch.optim.Muon`` with one batched Newton-Schulz iteration per shape."""

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group.get("foreach"):
                raise RuntimeError("Muon does not support foreach")
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            by_shape: dict[tuple[int, int], list[tuple[Tensor, Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum) if group["nesterov"] else buf
                wide = update.mT if p.shape[0] > p.shape[1] else update
                by_shape.setdefault(tuple(wide.shape), []).append((p, wide))
            for items in by_shape.values():
                ortho = newton_schulz(torch.stack([w for _, w in items]), group["ns_steps"],
                                      tuple(group["ns_coefficients"]), group["eps"])
                for (p, _), o in zip(items, ortho):
                    if p.shape[0] > p.shape[1]:
                        o = o.mT
                    p.mul_(1 - lr * decay)
                    p.add_(o, alpha=-lr * adjusted_lr_ratio(group["adjust_lr_fn"], p.shape))
        return loss


def adjusted_lr_ratio(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """torch.optim.Muon's per-shape scale: sqrt(max(1, rows/cols)) (Jordan) or 0.2 sqrt(max) (Moonshot)."""
    rows, cols = shape[:2]
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


class MuonWithAdamW(torch.optim.Optimizer):
    """One optimizer object over two: :class:`GroupedMuon` and ``torch.optim.AdamW``.

    ``param_groups``, ``state_dict`` and ``load_state_dict`` cover both (Muon's first), so the
    trainer's schedule and checkpoints (flattened by :mod:`attnlab.training.state`) work unchanged.
    """

    def __init__(self, model: nn.Module, *, lr: float, muon_lr: float, weight_decay: float,
                 betas: tuple[float, float], momentum: float = 0.95) -> None:
        muon_params, decay, no_decay = split_parameters(model)
        self.parts: list[torch.optim.Optimizer] = []
        if muon_params:
            self.parts.append(GroupedMuon([{"params": muon_params, "lr_scale": muon_lr / lr, "name": "muon"}],
                                          lr=muon_lr, weight_decay=weight_decay, momentum=momentum))
        adam_groups = [
            {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0, "name": "adamw_decay"},
            {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0, "name": "adamw_no_decay"},
        ]
        self.parts.append(torch.optim.AdamW([g for g in adam_groups if g["params"]], lr=lr, betas=betas,
                                             fused=use_fused(model)))
        # deliberately not calling Optimizer.__init__: the parts own the parameters and the state
        self.defaults = {}
        self.state = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [g for part in self.parts for g in part.param_groups]

    @param_groups.setter
    def param_groups(self, value) -> None:  # Optimizer internals may assign; the parts own them
        pass

    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The parts' states merged, parameter indices offset so they stay distinct.

        Each group records the ``part`` it belongs to, which :meth:`load_state_dict` uses to split
        them again.
        """
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
        saved = state_dict["param_groups"]
        groups_of = [[g for g in saved if g.get("part") == i] for i in range(len(self.parts))]
        if sum(map(len, groups_of)) != len(saved):
            raise ValueError("the saved optimizer state is not a Muon+AdamW state with the same parts "
                             "(was it saved with another --optimizer?)")
        offset = 0
        for part, groups in zip(self.parts, groups_of):
            count = sum(len(g["params"]) for g in groups)
            local_groups = [{**{k: v for k, v in g.items() if k != "part"},
                             "params": [p - offset for p in g["params"]]} for g in groups]
            local_state = {int(idx) - offset: entry for idx, entry in state_dict["state"].items()
                           if offset <= int(idx) < offset + count}
            part.load_state_dict({"state": local_state, "param_groups": local_groups})
            offset += count


def build_muon(model: nn.Module, config) -> MuonWithAdamW:
    """The optimizer of ``--optimizer muon`` for ``model`` and a TrainConfig."""
    if not (config.muon_lr > 0 and math.isfinite(config.muon_lr)):
        raise AttnlabError(f"muon_lr must be a positive number, got {config.muon_lr}")
    if any(type(p).__name__ == "DTensor" for p in model.parameters()):
        raise AttnlabError("--optimizer muon needs whole matrices (Newton-Schulz runs on the full matrix) and "
                           "does not work with --fsdp; use DDP (leave out --fsdp) or --optimizer adamw")
    return MuonWithAdamW(model, lr=config.lr, muon_lr=config.muon_lr, weight_decay=config.weight_decay,
                         betas=(config.beta1, config.beta2))
