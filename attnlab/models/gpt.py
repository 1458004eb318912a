"""GPT (Radford et al. 2018; GPT-2, 2019): a decoder-only Transformer language model.

    h_0 = E[tokens] + P[positions]                  (token + learned position embeddings)
    h_l = Block_l(h_{l-1})          for l = 1..L    (causal self-attention + feed-forward)
    logits = Norm(h_L) W_E^T                        (tied output head)
    loss = cross_entropy(logits[:, :-1], tokens[:, 1:])

The classic GPT-2 block is the default. Every other field is an option that changes one thing: the
attention overview's ablations (``norm="none"``, ``residual=False``, ``ffn=False``) and the speedrun's ideas
(``pos="rope"``, ``qk_norm``, ``mlp="relu2"|"swiglu"``, ``norm="rmsnorm"``, ``zero_init_proj``,
``logit_softcap``, untied head).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.checkpoint import Savable, config_from_preset
from attnlab.errors import AttnlabError, require_positive_fields
from attnlab.layers.attention import KVCache
from attnlab.layers.block import Block
from attnlab.layers.mlp import MLPS
from attnlab.layers.norm import NORMS, make_norm
from attnlab.layers.position import LearnedPositionalEmbedding, Rotary, SinusoidalPositionalEncoding

POSITIONS = ("learned", "sinusoidal", "rope")


@dataclass
class GPTConfig:
    """Every knob of the GPT. Defaults are GPT-2 small (124M) as OpenAI trained it."""

    vocab_size: int = 50257
    context_length: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    attn_dropout: float | None = None  # on the attention weights; None = dropout (0 spares the CPU a mask)
    bias: bool = True
    tie_weights: bool = True
    norm_position: str = "pre"  # "pre" (GPT-2) | "post" (the 2017 paper)
    norm: str = "layernorm"  # "layernorm" | "rmsnorm" | "none" (ablation)
    residual: bool = True  # False: the attention overview's "no shortcut connections" ablation
    ffn: bool = True  # False: the attention overview's "no feed-forward" ablation
    pos: str = "learned"  # "learned" | "sinusoidal" | "rope"
    mlp: str = "gelu"  # "gelu" | "relu2" | "swiglu" | "relu"
    qk_norm: bool = False
    zero_init_proj: bool = False
    logit_softcap: float = 0.0  # 0 = off; else logits = cap * tanh(logits / cap)

    def __post_init__(self) -> None:
        require_positive_fields(self, ("vocab_size", "context_length", "n_layer", "n_head", "n_embd"))
        if self.n_embd % self.n_head:
            raise AttnlabError(
                f"GPTConfig: n_embd={self.n_embd} is not divisible by n_head={self.n_head}; each head gets "
                f"n_embd / n_head features. Pick n_head among "
                f"{[h for h in range(1, min(self.n_embd, 64) + 1) if self.n_embd % h == 0]}"
            )
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise AttnlabError(f"GPTConfig.{name} must be in [0, 1), got {value}")
        choices = {"norm_position": ("pre", "post"), "norm": NORMS, "pos": POSITIONS, "mlp": MLPS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise AttnlabError(f"GPTConfig.{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise AttnlabError("GPTConfig: pos='rope' needs an even head size (n_embd / n_head)")
        if self.logit_softcap < 0:
            raise AttnlabError("GPTConfig.logit_softcap must be >= 0 (0 turns it off)")


PRESETS: dict[str, dict[str, Any]] = {
    # minGPT's small sizes; they train on a laptop CPU in minutes.
    "gpt-nano": dict(n_layer=3, n_head=3, n_embd=48, context_length=64),
    "gpt-micro": dict(n_layer=4, n_head=4, n_embd=128, context_length=64),
    "gpt-mini": dict(n_layer=6, n_head=6, n_embd=192, context_length=128),
    # the default of `attnlab train gpt` until 2026-11 (learned positions, GELU: converts to GPT-2)
    "gpt-jc": dict(n_layer=4, n_head=4, n_embd=128, context_length=128, dropout=0.1),
    "gpt-10m": dict(n_layer=6, n_head=6, n_embd=384, context_length=256),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, context_length=1024, vocab_size=50257),
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024, context_length=1024, vocab_size=50257),
    # gpt-micro's shape with the speedrun's ideas that pay on a CPU (benchmarks/speedrun.py):
    # rotary positions, QK-norm and ReLU^2; its recipe trains it with Muon (attnlab.recipes.lm)
    "gpt-speedrun": dict(n_layer=4, n_head=4, n_embd=128, context_length=64, pos="rope", qk_norm=True,
                         mlp="relu2"),
    # the default of `attnlab train gpt`: gpt-speedrun one layer shallower (a faster step: more steps in
    # two minutes), a 256-character context, SwiGLU, and dropout for a play-sized text (about 100k characters)
    # except on the attention weights (their masks cost the most on a CPU); chosen by measurement on other
    # plays (benchmarks/main_job.py --search, benchmarks/main_job_grid.py, BENCHMARKS.md)
    "gpt-play": dict(n_layer=3, n_head=4, n_embd=128, context_length=256, pos="rope", qk_norm=True,
                     mlp="swiglu", dropout=0.1, attn_dropout=0.0),
}

def preset_config(name: str, **overrides: Any) -> GPTConfig:
    return config_from_preset(GPTConfig, PRESETS, name, "GPT", overrides)


class GPT(Savable, nn.Module):
    model_type: ClassVar[str] = "gpt"
    config_class: ClassVar[type] = GPTConfig

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos_emb: nn.Module | None = None
        self.rope: Rotary | None = None
        if c.pos == "learned":
            self.pos_emb = LearnedPositionalEmbedding(c.context_length, c.n_embd)
        elif c.pos == "sinusoidal":
            self.pos_emb = SinusoidalPositionalEncoding(c.context_length, c.n_embd)
        else:
            self.rope = Rotary(c.n_embd // c.n_head, c.context_length)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.n_embd, c.n_head, dropout=c.dropout, bias=c.bias, causal=True, norm=c.norm,
                  norm_position=c.norm_position, residual=c.residual, ffn=c.ffn, mlp=c.mlp, qk_norm=c.qk_norm,
                  attn_dropout=c.attn_dropout)
            for _ in range(c.n_layer)
        )
        self.norm_f = make_norm(c.norm, c.n_embd, bias=c.bias) if c.norm_position == "pre" else nn.Identity()
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.reset_parameters()
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02) everywhere, residual projections N(0, 0.02 / sqrt(2 L))."""
        c = self.config
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                if c.zero_init_proj:
                    nn.init.zeros_(param)
                else:
                    nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))
        if c.zero_init_proj and not c.tie_weights:
            nn.init.zeros_(self.lm_head.weight)

    # ---- sizes -------------------------------------------------------------------------------
    def parameter_count(self, non_embedding: bool = False) -> int:
        """Distinct parameters (a tied head counts once). ``non_embedding`` leaves out the position table."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and isinstance(self.pos_emb, nn.Embedding):
            n -= self.pos_emb.weight.numel()
        return n

    def flops_per_token(self, context_length: int | None = None) -> float:
        """Training FLOPs per token: 6N (forward + backward of the weights) + 12 L T d (attention)."""
        c = self.config
        t = context_length or c.context_length
        return 6 * self.parameter_count(non_embedding=True) + 12 * c.n_layer * t * c.n_embd

    # ---- forward -----------------------------------------------------------------------------
    def new_cache(self) -> list[KVCache]:
        return [KVCache(self.config.context_length) for _ in self.blocks]

    def forward(self, idx: Tensor, *, cache: list[KVCache] | None = None, need_weights: bool = False,
                last_only: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``idx`` (B, T) token ids -> logits (B, T, vocab) (or (B, 1, vocab) with ``last_only``).

        With ``cache`` (from :meth:`new_cache`), ``idx`` holds only the new tokens. With
        ``need_weights``, returns ``(logits, [attention weights (B, H, T, S) per layer])``.
        """
        b, t = idx.shape
        offset = cache[0].length if cache else 0
        if offset + t > self.config.context_length:
            raise AttnlabError(
                f"sequence of {offset + t} tokens is longer than the context length {self.config.context_length}"
            )
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(t, offset)
        x = self.drop(x)
        maps: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, cache=cache[i] if cache else None, rope=self.rope, need_weights=need_weights)
            if need_weights:
                maps.append(weights["self"])
        x = self.norm_f(x)
        if last_only:
            x = x[:, -1:, :]
        logits = self.lm_head(x)
        if self.config.logit_softcap:
            cap = self.config.logit_softcap
            logits = cap * torch.tanh(logits / cap)
        return (logits, maps) if need_weights else logits

    def loss(self, idx: Tensor, targets: Tensor) -> Tensor:
        """Mean next-token cross-entropy; targets of -1 are ignored."""
        logits = self(idx)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> list[Tensor]:
        """Attention weights of every layer for ``idx`` (B, T): a list of (B, H, T, T) tensors."""
        was_training = self.training
        self.eval()
        _, maps = self(idx, need_weights=True)
        self.train(was_training)
        return maps

    # ---- generation stream (the protocol of attnlab.inference.sampling) ---------------------------
    @property
    def stream_context(self) -> int:
        """The longest prompt the model can read; a longer one is cropped from the left."""
        return self.config.context_length

    def start_stream(self, use_cache: bool = True) -> SlidingWindow:
        return SlidingWindow(self.config.context_length, use_cache)

    def stream_step(self, ids: list[int], state: SlidingWindow) -> tuple[Tensor, SlidingWindow]:
        """Append ``ids`` to the stream; returns the next-token logits (vocab,) and the state."""
        return state.feed(self, ids), state

    # ---- persistence -------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPT:
        return cls(preset_config(name, **overrides))

    def with_config(self, **changes: Any) -> GPTConfig:
        return dataclasses.replace(self.config, **changes)


class SlidingWindow:
    """A GPT's generation state: the tokens so far, the window it reads, and its KV cache.

    The model sees ``history[start:]``. While that fits the context it grows by one token per step;
    when it would overflow, the window jumps forward to keep the last half of the context
    (learned absolute positions allow no cheaper exact shift). With and without the cache the
    same window is read, so both give identical tokens; with the cache the window is re-read once
    every ``context_length / 2`` tokens instead of at every token.
    """

    def __init__(self, limit: int, use_cache: bool) -> None:
        self.limit, self.use_cache = limit, use_cache
        self.keep = max(1, limit // 2)
        self.cache: list[KVCache] | None = None
        self.history: list[int] = []
        self.start = 0

    def feed(self, model: GPT, ids: list[int]) -> Tensor:
        self.history.extend(ids)
        device = next(model.parameters()).device
        moved = False
        if len(self.history) - self.start > self.limit:
            self.start = len(self.history) - (self.keep if len(ids) <= self.keep else self.limit)
            moved = True
        window = self.history[self.start :]
        if not self.use_cache:
            return model(torch.tensor([window], device=device), last_only=True)[0, -1]
        if self.cache is None or moved:
            self.cache = model.new_cache()
            new = window
        else:
            new = ids
        return model(torch.tensor([new], device=device), cache=self.cache, last_only=True)[0, -1]
