"""attnlab.scratch: the seed, step by step.

The classes of the seed's companion notes, with their names, constructor signatures and
parameter creation order, so that the notes' code pasted against them prints the notes'
numbers. Plain tensor maths with the equations in the docstrings; never used by the fast path
(:mod:`attnlab.layers`), only tested equal to it.

    import torch
    from attnlab.scratch import SelfAttention_v1

    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(d_in=8, d_out=4)   # W_query, W_key, W_value: (8, 4), in that order
    context = sa_v1(inputs)                     # the seed's 5 x 8 inputs -> 5 x 4 context vectors

Attention classes keep their latest weights in ``last_attn_weights`` (see
:mod:`attnlab.scratch.attention`); ``attnlab explain`` prints them.
"""

from __future__ import annotations

import importlib

from attnlab.scratch.attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    SelfAttention_v2,
)
from attnlab.scratch.blocks import GELU, GPT_CONFIG_124M, FeedForward, GPTModel, LayerNorm, TransformerBlock

__all__ = [
    "SelfAttention_v1",
    "SelfAttention_v2",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
    "LayerNorm",
    "GELU",
    "FeedForward",
    "TransformerBlock",
    "GPTModel",
    "GPT_CONFIG_124M",
]


def _export_from(module_name: str) -> None:
    """Re-export the public names (``__all__``) of a sibling module, if that module exists yet.

    The recurrent cells and Bahdanau attention live in their own modules; they appear here
    as soon as their files do. An ImportError raised *inside* such a module is a real bug and
    is not hidden.
    """
    full_name = f"{__name__}.{module_name}"
    try:
        module = importlib.import_module(full_name)
    except ModuleNotFoundError as err:
        if err.name == full_name:
            return
        raise
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == full_name
        ]
    for name in names:
        globals()[name] = getattr(module, name)
        if name not in __all__:
            __all__.append(name)


_export_from("recurrent")
_export_from("bahdanau")
