"""Copying weights from the overview's step-by-step classes (:mod:`attnlab.scratch`) into the fast layers.

The two implementations compute the same function; these maps are how the tests prove it (same
weights in, same outputs and gradients out) and how a reader can move a model they built with
the overview's code onto the fast path. The scratch classes keep separate ``W_query``, ``W_key``,
``W_value`` matrices; the fast attention stacks them into one fused ``qkv`` matrix:
``qkv.weight = [W_query; W_key; W_value]``. The additive (Bahdanau) attention has the same
parameters on both sides; :func:`use_scratch_attention` puts the scratch one inside a fast
:class:`~attnlab.models.seq2seq.Seq2Seq`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.layers.attention import MultiHeadAttention as FastAttention
from attnlab.layers.block import Block
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.scratch.bahdanau import BahdanauAttention


def _copy_linear(dst: nn.Linear, src: nn.Linear) -> None:
    dst.weight.copy_(src.weight)
    if dst.bias is not None:
        if src.bias is not None:
            dst.bias.copy_(src.bias)
        else:
            dst.bias.zero_()


@torch.no_grad()
def copy_attention(fast: FastAttention, scratch: nn.Module) -> FastAttention:
    """scratch ``MultiHeadAttention`` -> fast ``MultiHeadAttention`` (fused QKV)."""
    fast.qkv.weight.copy_(torch.cat([scratch.W_query.weight, scratch.W_key.weight, scratch.W_value.weight]))
    if fast.qkv.bias is not None:
        biases = [lin.bias if lin.bias is not None else torch.zeros(lin.out_features)
                  for lin in (scratch.W_query, scratch.W_key, scratch.W_value)]
        fast.qkv.bias.copy_(torch.cat(biases))
    _copy_linear(fast.proj, scratch.out_proj)
    return fast


@torch.no_grad()
def _copy_norm(dst: nn.Module, src: nn.Module) -> None:
    dst.weight.copy_(src.scale)
    if getattr(dst, "bias", None) is not None:
        dst.bias.copy_(src.shift)


@torch.no_grad()
def copy_block(fast: Block, scratch: nn.Module) -> Block:
    """scratch ``TransformerBlock`` -> fast pre-norm ``Block``."""
    copy_attention(fast.attn, scratch.att)
    _copy_norm(fast.norm1, scratch.norm1)
    _copy_norm(fast.norm2, scratch.norm2)
    _copy_linear(fast.mlp.fc, scratch.ff.layers[0])
    _copy_linear(fast.mlp.proj, scratch.ff.layers[2])
    return fast


def gpt_config_from_seed(cfg: dict) -> GPTConfig:
    """The attention overview's ``cfg`` dict as a :class:`GPTConfig` (untied head, biases everywhere but the head)."""
    return GPTConfig(vocab_size=cfg["vocab_size"], context_length=cfg["context_length"], n_layer=cfg["n_layers"],
                     n_head=cfg["n_heads"], n_embd=cfg["emb_dim"], dropout=cfg["drop_rate"], bias=True,
                     tie_weights=False)


@torch.no_grad()
def gpt_from_scratch(scratch: nn.Module, cfg: dict) -> GPT:
    """A fast :class:`GPT` holding the weights of a scratch ``GPTModel`` built from ``cfg``."""
    fast = GPT(gpt_config_from_seed(cfg))
    fast.tok_emb.weight.copy_(scratch.tok_emb.weight)
    fast.pos_emb.weight.copy_(scratch.pos_emb.weight)
    for fast_block, scratch_block in zip(fast.blocks, scratch.trf_blocks):
        copy_block(fast_block, scratch_block)
    _copy_norm(fast.norm_f, scratch.final_norm)
    fast.lm_head.weight.copy_(scratch.out_head.weight)
    return fast


class ScratchAdditiveAttention(BahdanauAttention):
    """The overview's :class:`BahdanauAttention` behind the fast attention's interface.

    :class:`attnlab.layers.additive.AdditiveAttention` precomputes ``k_j = U h_j`` once per sentence
    (``keys``) and turns the padding mask into a 0 / -inf bias (``mask_bias``); here ``keys`` is a
    no-op and ``U h_j`` is recomputed at every decoder step, as the overview writes it.
    """

    def keys(self, h: Tensor) -> Tensor:
        return h  # nothing precomputed

    @staticmethod
    def mask_bias(mask: Tensor) -> Tensor:
        return mask.bool()  # kept as the mask itself

    def forward(self, s_prev: Tensor, h: Tensor, keys: Tensor | None = None,  # type: ignore[override]
                bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return super().forward(s_prev, h, bias)


@torch.no_grad()
def use_scratch_attention(model: nn.Module) -> nn.Module:
    """Swap the fast additive attention of an attending :class:`~attnlab.models.seq2seq.Seq2Seq` for the
    overview's step-by-step one, weights kept (the parameter names are the same: ``W``, ``U``, ``v``).

    The model computes the same function, more slowly (see benchmarks/seq2seq.py); returns ``model``.
    """
    fast = getattr(model, "attention", None)
    if fast is None:
        raise AttnlabError("this model has no attention to swap (attention='none')")
    scratch = ScratchAdditiveAttention(fast.W.in_features, fast.U.in_features, fast.W.out_features)
    scratch.load_state_dict(fast.state_dict())
    model.attention = scratch.to(fast.W.weight.device, fast.W.weight.dtype)
    return model
