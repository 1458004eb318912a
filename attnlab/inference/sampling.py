"""Sampling from a language model: temperature, top-k, top-p, stop strings, a KV cache.

At each step the model gives logits ``z`` over the vocabulary for the next token; we draw from
``softmax(z / temperature)`` restricted to the ``top_k`` most likely tokens and to the smallest set
whose probability reaches ``top_p`` (nucleus sampling). ``temperature = 0`` means greedy (argmax).

With the cache (the default), the prompt is run once and every new token costs one position; the
output is identical to recomputing the whole context each time (tested). Every generating model
streams through one protocol, on token ids: ``state = model.start_stream(use_cache)``,
``logits, state = model.stream_step(ids, state)`` and ``model.stream_context`` (the longest prompt,
None for no limit); the GPT implements it with a KV cache over a sliding window, the recurrent
models with their carried hidden state. Sampling never asks what kind of model it has.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError

MAX_NEW_TOKENS = 1_000_000  # a longer request is a typo, not a plan
MAX_PROMPT_CHARS = 1_000_000  # only the last context's worth of tokens is ever read
MAX_SEED = 2**63 - 1  # what torch.Generator.manual_seed takes


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class SamplingConfig:
    """How to sample; every value is checked here, so the command line and Python get the same errors
    (each names its flag: ``--temperature`` ...)."""

    max_new_tokens: int = 500
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        n = self.max_new_tokens
        if not _is_int(n) or not 0 <= n <= MAX_NEW_TOKENS:
            raise AttnlabError(f"--max-new-tokens must be a whole number from 0 to {MAX_NEW_TOKENS:,}, got {n!r}")
        t = self.temperature
        if not _is_number(t) or not math.isfinite(t) or t < 0:
            raise AttnlabError(f"--temperature must be a finite number >= 0 (0 = greedy), got {t!r}")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 1):
            raise AttnlabError(f"--top-k must be a whole number >= 1, got {self.top_k!r}")
        p = self.top_p
        if p is not None and (not _is_number(p) or not math.isfinite(p) or not 0 < p <= 1):
            raise AttnlabError(f"--top-p must be a number in (0, 1], got {p!r}")
        check_seed(self.seed)


def check_seed(seed: object, flag: str = "--seed") -> None:
    """A sampling seed is None or a whole number from 0 to 2**63 - 1."""
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise AttnlabError(f"{flag} must be a whole number from 0 to 2**63 - 1, got {seed!r}")


def check_prompt(text: object, flag: str = "--prompt") -> str:
    """A prompt is text of at most ``MAX_PROMPT_CHARS`` characters that is valid Unicode (text taken from a
    command line that was not UTF-8 holds lone surrogates, which no tokenizer or terminal accepts)."""
    if not isinstance(text, str):
        raise AttnlabError(f"{flag} must be text, got {type(text).__name__}")
    if len(text) > MAX_PROMPT_CHARS:
        raise AttnlabError(f"{flag} is {len(text):,} characters long; the limit is {MAX_PROMPT_CHARS:,} "
                           "(only the last context's worth of tokens is read anyway)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise AttnlabError(f"{flag} is not valid UTF-8 text (a stray byte at character {err.start}); "
                           "pass UTF-8 text") from None
    return text


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus (last dimension)."""
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass strictly before each token
        drop_sorted = before >= top_p  # keep the smallest prefix whose mass reaches top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def pick_token(logits: Tensor, config: SamplingConfig, generator: torch.Generator | None) -> Tensor:
    """One token id per row of ``logits`` (B, V)."""
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / config.temperature, config.top_k, config.top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def stream_tokens(model: nn.Module, prompt_ids: list[int], config: SamplingConfig) -> Iterator[int]:
    """Yield new token ids one at a time (stop by breaking out of the loop).

    Any model that implements the stream protocol generates the same way: ``state =
    model.start_stream(use_cache)``, then ``logits, state = model.stream_step(ids, state)`` for the
    prompt and for each new token.
    """
    if not prompt_ids:
        raise AttnlabError("the prompt is empty after tokenization; give at least one known character")
    if not hasattr(model, "start_stream"):
        raise AttnlabError(f"a {getattr(model, 'model_type', type(model).__name__)} model cannot generate text")
    generator = None
    if config.seed is not None:
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(config.seed)
    model.eval()
    with torch.no_grad():
        logits, state = model.stream_step(list(prompt_ids), model.start_stream(config.use_cache))
        for _ in range(config.max_new_tokens):
            token = int(pick_token(logits.unsqueeze(0), config, generator)[0])
            yield token
            logits, state = model.stream_step([token], state)


def crop_prompt(prompt_ids: list[int], model: nn.Module) -> tuple[list[int], int]:
    """Keep the last ``context_length`` tokens of a prompt; return them and how many were dropped."""
    limit = getattr(model, "stream_context", None)
    if limit is None or len(prompt_ids) <= limit:
        return prompt_ids, 0
    return prompt_ids[-limit:], len(prompt_ids) - limit


def generate_ids(model: nn.Module, prompt_ids: list[int], config: SamplingConfig,
                 stop_ids: set[int] | None = None) -> list[int]:
    prompt_ids, dropped = crop_prompt(list(prompt_ids), model)
    if dropped:
        warnings.warn(f"the prompt is longer than the model's context: its first {dropped} tokens were dropped",
                      stacklevel=2)
    out = []
    for token in stream_tokens(model, prompt_ids, config):
        out.append(token)
        if stop_ids and token in stop_ids:
            break
    return out


def generate_text(model: nn.Module, tokenizer, prompt: str, config: SamplingConfig,
                  stop: list[str] | None = None, on_text=None, unknown: str = "error") -> str:
    """Continue ``prompt``; returns only the new text, cut before the first stop string.

    ``on_text(piece)`` (optional) receives the new text as it is produced, for streaming output.
    ``unknown``: what a char tokenizer does with characters it never saw: "error" (a clear
    :class:`AttnlabError`) or "skip" (drop them; the chat loop does this).
    """
    ids = tokenizer.encode(check_prompt(prompt, "the prompt"), unknown=unknown)
    ids, dropped = crop_prompt(ids, model)
    if dropped:
        warnings.warn(f"the prompt is longer than the model's context: its first {dropped} tokens were dropped",
                      stacklevel=2)
    new: list[int] = []
    text, shown = "", 0
    stop = [s for s in (stop or []) if s]
    for token in stream_tokens(model, ids, config):
        new.append(token)
        text = tokenizer.decode(new)
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        if cut >= 0:
            text = text[:cut]
            break
        # hold back a tail that could be the start of a stop string or of a multi-byte character
        hold = max((len(s) - 1 for s in stop), default=0)
        safe = len(text) - hold
        if text.endswith("\ufffd"):
            safe = min(safe, len(text) - 1)
        if on_text and safe > shown:
            on_text(text[shown:safe])
            shown = safe
    if on_text and len(text) > shown:
        on_text(text[shown:])
    return text
