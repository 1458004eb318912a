"""The position-wise feed-forward network: ``FFN(x) = W_2 act(W_1 x + b_1) + b_2``.

``gelu``: GELU with the tanh approximation (GPT-2's), hidden width 4d.
``relu2``: ``relu(x)^2`` (the modded-nanoGPT speedrun's choice), hidden width 4d.
``swiglu``: ``W_2 (silu(W_1 x) * W_3 x)``; its hidden width defaults to 8d/3 (rounded to a multiple
of 8) so the parameter count matches the 4d GELU MLP.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

MLPS = ("gelu", "relu2", "swiglu", "relu")


def swiglu_hidden(d_model: int) -> int:
    return 8 * ((8 * d_model // 3 + 7) // 8)


class MLP(nn.Module):
    def __init__(self, d_model: int, d_hidden: int | None = None, *, kind: str = "gelu", bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in MLPS:
            raise ValueError(f"unknown mlp {kind!r}; choose one of {', '.join(MLPS)}")
        self.kind = kind
        if d_hidden is None:
            d_hidden = swiglu_hidden(d_model) if kind == "swiglu" else 4 * d_model
        self.fc = nn.Linear(d_model, d_hidden, bias=bias)
        if kind == "swiglu":
            self.gate = nn.Linear(d_model, d_hidden, bias=bias)
        self.proj = nn.Linear(d_hidden, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        if self.kind == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif self.kind == "relu2":
            h = F.relu(h).square()
        elif self.kind == "relu":
            h = F.relu(h)
        else:
            h = F.silu(self.gate(x)) * h
        return self.dropout(self.proj(h))
