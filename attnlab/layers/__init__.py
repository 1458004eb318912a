"""The fast building blocks every model uses (tested equal to :mod:`attnlab.scratch`)."""

from attnlab.layers.additive import AdditiveAttention
from attnlab.layers.attention import KVCache, MultiHeadAttention, build_mask
from attnlab.layers.block import Block
from attnlab.layers.mlp import MLP
from attnlab.layers.norm import make_norm
from attnlab.layers.position import LearnedPositionalEmbedding, Rotary, SinusoidalPositionalEncoding

__all__ = ["AdditiveAttention", "KVCache", "MultiHeadAttention", "build_mask", "Block", "MLP", "make_norm",
           "LearnedPositionalEmbedding", "Rotary", "SinusoidalPositionalEncoding"]
