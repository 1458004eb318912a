"""Greedy decoding and beam search for any autoregressive model, batched.

Both work with a *step function* and a *state*, so an RNN decoder and a Transformer decoder share
them:

    step_fn(tokens_t, state) -> (log_probs, new_state)

``tokens_t`` (N,) holds the last token of each of the N sequences being decoded, ``log_probs`` (N, V)
the log-probabilities of the next token, and ``state`` is a pytree (nested dicts, lists and tuples)
of tensors with the sequence on dim 0: encoder outputs, masks, hidden states, caches. Beam search
repeats the state ``beam`` times and reorders it with ``index_select(0, ...)`` after every step.

Beam search keeps the ``beam`` best partial hypotheses of each sentence. Hypotheses are compared by
their length-normalised score

    score(y) = log P(y | x) / |y| ** length_penalty

(``length_penalty = 0``: plain log-probability, which prefers short outputs; 1: mean log-probability
per token). A hypothesis that has produced ``<eos>`` is finished: it stays in the beam with its score
frozen until every hypothesis of its sentence is finished or ``max_len`` is reached.

Any state entry can be *recorded* (``record="attn"``): its value after each step is collected along
the chosen hypothesis, e.g. the attention weights for an alignment picture.

:func:`decode` runs either search on an encoder-decoder model (the RNN encoder-decoders and the
Transformer) through the protocol they share: ``model.start_decoding(src, src_mask)`` -> state,
``model.step(tokens, state)``, ``model.config.bos_id / eos_id / max_target_len`` and ``model.attends``
(the state then holds the step's attention weights as ``"attn"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from attnlab.errors import AttnlabError

State = Any  # a pytree of tensors, sequences on dim 0
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]


def tree_map(fn: Callable[[Tensor], Tensor], tree: State) -> State:
    """Apply ``fn`` to every tensor of a nested dict / list / tuple (other leaves are kept as they are)."""
    if isinstance(tree, Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_map(fn, v) for v in tree)
    return tree


def select(state: State, index: Tensor) -> State:
    """Rows ``index`` of every tensor of the state (reorders beams)."""
    return tree_map(lambda t: t.index_select(0, index), state)


def repeat_rows(state: State, times: int) -> State:
    """Repeat each row ``times`` times in place: rows (a, b) -> (a, a, b, b) for times = 2."""
    return tree_map(lambda t: t.repeat_interleave(times, dim=0), state)


@dataclass
class DecodeResult:
    """Decoded sequences, one row per input sentence.

    ``tokens`` (B, T): the generated ids (without ``<bos>``), ``<eos>`` included when reached and
    repeated after it as padding; ``lengths`` (B,): tokens up to and including the first ``<eos>``;
    ``scores`` (B,): total log-probability (beam search: the length-normalised score it ranked by);
    ``recorded`` (B, T, ...): the recorded state entry at each step, or None; ``eos_id``: the end token.
    """

    tokens: Tensor
    lengths: Tensor
    scores: Tensor
    recorded: Tensor | None = None
    eos_id: int = -1

    def sequences(self, keep_eos: bool = False) -> list[list[int]]:
        """Python lists of ids, cut at the first ``<eos>`` (dropped unless ``keep_eos``)."""
        out = []
        for row, length in zip(self.tokens.tolist(), self.lengths.tolist()):
            row = row[:length]
            out.append(row)
        if not keep_eos:
            out = [r[:-1] if r and r[-1] == self.eos_id else r for r in out]
        return out


def _check(max_len: int, batch_size: int) -> None:
    if not isinstance(max_len, int) or max_len < 1:
        raise AttnlabError(f"max_len must be a positive integer, got {max_len!r}")
    if batch_size < 1:
        raise AttnlabError(f"batch_size must be a positive integer, got {batch_size!r}")


def _recorded(state: State, record: str | None) -> Tensor | None:
    if record is None:
        return None
    if not isinstance(state, dict) or record not in state:
        raise AttnlabError(f"cannot record {record!r}: the decoder state has no such entry")
    return state[record]


@torch.no_grad()
def greedy_decode(step_fn: StepFn, init_state: State, bos_id: int, eos_id: int, max_len: int,
                  batch_size: int, record: str | None = None) -> DecodeResult:
    """Pick the most likely token at every step, for ``batch_size`` sequences at once.

    Stops when every sequence has produced ``eos_id`` or after ``max_len`` tokens.
    """
    _check(max_len, batch_size)
    state = init_state
    device = _device(init_state)
    tokens = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, device=device)
    out, rec = [], []
    for _ in range(max_len):
        log_probs, state = step_fn(tokens, state)
        best, tokens = log_probs.float().max(dim=-1)
        tokens = tokens.masked_fill(finished, eos_id)
        scores += best.masked_fill(finished, 0.0)
        lengths += (~finished).long()
        out.append(tokens)
        if record is not None:
            rec.append(_recorded(state, record))
        finished = finished | (tokens == eos_id)
        if bool(finished.all()):
            break
    return DecodeResult(torch.stack(out, 1), lengths, scores, torch.stack(rec, 1) if rec else None, eos_id)


@torch.no_grad()
def beam_search(step_fn: StepFn, init_state: State, bos_id: int, eos_id: int, max_len: int, beam: int,
                length_penalty: float = 1.0, batch_size: int | None = None,
                record: str | None = None) -> DecodeResult:
    """Keep the ``beam`` best hypotheses per sentence; return the best finished one of each.

    ``init_state`` holds one row per sentence (``batch_size`` rows; inferred from the state when
    None). With ``beam = 1`` this is exactly :func:`greedy_decode`.
    """
    if not isinstance(beam, int) or beam < 1:
        raise AttnlabError(f"beam width must be a positive integer, got {beam!r}")
    if length_penalty < 0:
        raise AttnlabError(f"length_penalty must be >= 0, got {length_penalty}")
    if batch_size is None:
        batch_size = _batch_size(init_state)
    _check(max_len, batch_size)
    B, K = batch_size, beam
    device = _device(init_state)
    state = repeat_rows(init_state, K)
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one, or the top-k would pick K copies
    lengths = torch.zeros(B, K, dtype=torch.long, device=device)
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)
    recorded: Tensor | None = None
    offsets = (torch.arange(B, device=device) * K).unsqueeze(1)  # row of beam 0 of each sentence
    for _ in range(max_len):
        log_probs, state = step_fn(tokens, state)
        log_probs = log_probs.float()
        V = log_probs.shape[-1]
        log_probs = log_probs.view(B, K, V)
        # a finished hypothesis can only be extended by <eos>, at no cost and without growing
        frozen = torch.full_like(log_probs[0, 0], float("-inf"))
        frozen[eos_id] = 0.0
        log_probs = torch.where(finished.unsqueeze(-1), frozen, log_probs)
        total = scores.unsqueeze(-1) + log_probs  # (B, K, V)
        new_len = (lengths + (~finished).long()).unsqueeze(-1).float()  # (B, K, 1)
        ranked = total / new_len.clamp(min=1.0).pow(length_penalty) if length_penalty else total
        _, flat = ranked.view(B, K * V).topk(K, dim=-1)  # (B, K)
        origin, token = flat // V, flat % V
        scores = total.view(B, K * V).gather(1, flat)
        lengths = (lengths + (~finished).long()).gather(1, origin)
        finished = finished.gather(1, origin) | (token == eos_id)
        rows = (offsets + origin).view(-1)
        state = select(state, rows)
        tokens = token.view(-1)
        history = torch.cat([history.index_select(0, rows), tokens.unsqueeze(1)], dim=1)
        if record is not None:
            step_value = _recorded(state, record).unsqueeze(1)
            recorded = step_value if recorded is None else torch.cat(
                [recorded.index_select(0, rows), step_value], dim=1)
        if bool(finished.all()):
            break
    final = scores / lengths.clamp(min=1).float().pow(length_penalty) if length_penalty else scores
    best = final.argmax(dim=-1)  # (B,)
    pick = (torch.arange(B, device=device) * K + best)
    return DecodeResult(
        history.index_select(0, pick),
        lengths.gather(1, best.unsqueeze(1)).squeeze(1),
        final.gather(1, best.unsqueeze(1)).squeeze(1),
        recorded.index_select(0, pick) if recorded is not None else None,
        eos_id,
    )


def never_emit(step_fn: StepFn, banned: list[int]) -> StepFn:
    """``step_fn`` whose log-probabilities of ``banned`` ids (``<pad>``, ``<bos>``) are ``-inf``: a decoder
    never writes a token that only marks the start or fills the batch."""
    if not banned:
        return step_fn

    def step(tokens: Tensor, state: State) -> tuple[Tensor, State]:
        log_probs, state = step_fn(tokens, state)
        log_probs = log_probs.clone()
        log_probs[..., banned] = float("-inf")
        return log_probs, state

    return step


@torch.no_grad()
def decode(model: Any, src: Tensor, src_mask: Tensor, *, beam: int = 1, max_len: int | None = None,
           length_penalty: float = 1.0, **start_options: Any) -> DecodeResult:
    """Translate a batch of token ids: greedy (``beam=1``) or beam search, in eval mode.

    ``src`` (B, S) ids, ``src_mask`` (B, S) true at real tokens. ``max_len``: at most this many
    output tokens (default: the model's ``max_target_len``; never more than its ``context_length``
    when it has one). ``recorded`` holds the attention weights (B, T, S) when the model attends.
    ``start_options`` go to ``model.start_decoding`` (the Transformer's ``use_cache=False``).
    """
    c = model.config
    max_len = max_len or c.max_target_len
    limit = getattr(c, "context_length", None)
    if limit is not None:
        max_len = min(max_len, limit)
    record = "attn" if getattr(model, "attends", False) else None
    was_training = model.training
    model.eval()
    step = never_emit(model.step, [i for i in (c.pad_id, c.bos_id) if i is not None and i != c.eos_id])
    try:
        state = model.start_decoding(src, src_mask.bool(), **start_options)
        if beam == 1:
            return greedy_decode(step, state, c.bos_id, c.eos_id, max_len, src.shape[0], record=record)
        return beam_search(step, state, c.bos_id, c.eos_id, max_len, beam, length_penalty,
                           batch_size=src.shape[0], record=record)
    finally:
        model.train(was_training)


def _leaves(tree: State) -> list[Tensor]:
    found: list[Tensor] = []
    tree_map(lambda t: found.append(t) or t, tree)
    return found


def _device(state: State) -> torch.device:
    leaves = _leaves(state)
    return leaves[0].device if leaves else torch.device("cpu")


def _batch_size(state: State) -> int:
    leaves = _leaves(state)
    if not leaves:
        raise AttnlabError("beam_search needs batch_size when the state holds no tensors")
    return leaves[0].shape[0]
