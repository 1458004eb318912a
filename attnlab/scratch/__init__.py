"""attnlab.scratch: the attention overview, step by step.

The classes of the attention overview's companion notes, with their names, constructor signatures and
parameter creation order, so that the notes' code pasted against them prints the notes'
numbers. Plain tensor maths with the equations in the docstrings; never used by the fast path
(:mod:`attnlab.layers`), only tested equal to it.

    import torch
    from attnlab.scratch import SelfAttention_v1

    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(d_in=8, d_out=4)   # W_query, W_key, W_value: (8, 4), in that order
    context = sa_v1(inputs)                     # the attention overview's 5 x 8 inputs -> 5 x 4 context vectors

Attention classes keep their latest weights in ``last_attn_weights`` (see
:mod:`attnlab.scratch.attention`); ``attnlab explain`` prints them.
"""

from __future__ import annotations

from attnlab.scratch.attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    SelfAttention_v2,
)
from attnlab.scratch.bahdanau import BahdanauAttention
from attnlab.scratch.blocks import GELU, GPT_CONFIG_124M, FeedForward, GPTModel, LayerNorm, TransformerBlock
from attnlab.scratch.recurrent import (
    CELLS,
    GRU,
    LSTM,
    ElmanRNN,
    ElmanRNNCell,
    GRUCell,
    LSTMCell,
    Recurrent,
    RNNCell,
    unroll,
)

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
    "ElmanRNNCell",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "CELLS",
    "unroll",
    "Recurrent",
    "ElmanRNN",
    "LSTM",
    "GRU",
    "BahdanauAttention",
]
