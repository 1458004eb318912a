"""Numbers an experiment reports for a trained run, computed the same way for every model.

**Held-out loss over the whole validation split.** The trainer's validation loss averages a few
fixed batches, drawn differently by each objective (random windows for a GPT, carried-state
windows for a recurrent LM). To compare models on exactly the same characters, every LM here is
also scored on the whole split, each token once:

    loss = -(1/N) sum_t log P(x_t | x_<t),     bits per character = loss / ln 2

A recurrent LM reads the split as one stream (its state carries all of the past). A GPT has a
window of ``T`` tokens: windows start every ``T/2`` tokens and each scores only its second half
(the first window scores everything), so every token is predicted from at least ``T/2`` tokens of
context, never from across the end of the window.

**Exact match against source length.** Test pairs are grouped by the number ``k`` of dates joined
in the source (``" ; "``-separated); each group is translated greedily (stopping at 1.5 times its
longest reference + 5 tokens: a longer output cannot be right) and scored with
:func:`attnlab.evaluation.translation_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SEPARATOR = " ; "


@torch.no_grad()
def heldout_lm_loss(model: nn.Module, ids: Tensor, chunk: int = 512, batch: int = 32) -> float:
    """Mean next-token loss (nats) over every token of ``ids`` but the first; see the module docstring."""
    model.eval()
    ids = ids.long().view(1, -1)
    n = ids.shape[1] - 1
    if n < 1:
        return math.nan
    context = getattr(getattr(model, "config", None), "context_length", None)
    total = 0.0
    if context is None:  # recurrent: one stream, the state carried from chunk to chunk
        state = None
        for start in range(0, n, chunk):
            x = ids[:, start : min(start + chunk, n)]
            y = ids[:, start + 1 : start + 1 + x.shape[1]]
            logits, state = model(x, state, return_state=True)
            total += float(F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                           reduction="sum"))
        return total / n
    half = max(1, context // 2)
    windows = []  # (start, end, first target scored)
    scored, start = 0, 0
    while scored < n:
        end = min(start + context, n)
        windows.append((start, end, scored - start))
        scored = end
        start = max(start + half, end - context) if end < n else end
    for group in range(0, len(windows), batch):
        chunk = windows[group : group + batch]
        full = [w for w in chunk if w[1] - w[0] == context]
        rest = [w for w in chunk if w[1] - w[0] != context]
        for part in ([full] if full else []) + [[w] for w in rest]:
            x = torch.stack([ids[0, a:b] for a, b, _ in part])
            y = torch.stack([ids[0, a + 1 : b + 1] for a, b, _ in part])
            logits = model(x).float()
            for row, (_, _, first) in enumerate(part):
                total += float(F.cross_entropy(logits[row, first:], y[row, first:], reduction="sum"))
    return total / n


def lm_sample(model: nn.Module, tokenizer: Any, prompt: str, length: int, seed: int) -> str:
    """``prompt`` and ``length`` sampled tokens (temperature 0.8, fixed seed)."""
    from attnlab.inference.sampling import SamplingConfig, generate_text

    model.eval()
    return prompt + generate_text(model, tokenizer, prompt,
                                  SamplingConfig(max_new_tokens=length, temperature=0.8, seed=seed))


def items_in(source: str) -> int:
    """How many items (dates) a source sentence joins."""
    return source.count(SEPARATOR) + 1


def by_length(pairs: Sequence[tuple[str, str]], ks: Sequence[int], per_k: int
              ) -> dict[int, list[tuple[str, str]]]:
    """At most ``per_k`` pairs for each ``k`` in ``ks``, in their original order."""
    groups: dict[int, list[tuple[str, str]]] = {k: [] for k in ks}
    for pair in pairs:
        k = items_in(pair[0])
        if k in groups and len(groups[k]) < per_k:
            groups[k].append(pair)
    return groups


def translation_by_length(translator: Any, pairs: Sequence[tuple[str, str]], ks: Sequence[int], per_k: int,
                          batch_size: int = 128) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    """Scores ``{str(k): {"exact_match", "cer", "bleu", "n"}}`` on test pairs with ``k`` items in the
    source, and the translations ``{str(k): [output, ...]}`` (in the order of :func:`by_length`)."""
    from attnlab.evaluation import translation_metrics

    scores, outputs = {}, {}
    for k, group in by_length(pairs, ks, per_k).items():
        if not group:
            continue
        longest = max(len(translator.tgt_tokenizer.encode(t)) for _, t in group)
        hyps = translator.translate([s for s, _ in group], batch_size=batch_size,
                                    max_len=longest * 3 // 2 + 5)
        scores[str(k)] = translation_metrics(hyps, [t for _, t in group])
        outputs[str(k)] = hyps
    return scores, outputs
