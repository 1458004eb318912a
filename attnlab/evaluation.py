"""Translation metrics: exact match, character error rate and BLEU (sacrebleu).

    exact match = (1/N) sum_n [hyp_n == ref_n]
    CER         = sum_n edit_distance(hyp_n, ref_n) / sum_n len(ref_n)       (characters; can exceed 1)
    BLEU        = BP * exp(sum_{n=1..4} 1/4 log p_n)                          (corpus level, sacrebleu's
                  defaults: 13a tokenisation, brevity penalty BP = min(1, exp(1 - r/c)))

``edit_distance`` is the Levenshtein distance: the fewest character insertions, deletions and
substitutions that turn one string into the other.

A run is opened for translating by :func:`attnlab.inference.translate.load_translator`.
"""

from __future__ import annotations

from collections.abc import Sequence

from attnlab.errors import AttnlabError


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise AttnlabError(f"{len(hyps)} hypotheses but {len(refs)} references; they must pair up")
    if not refs:
        raise AttnlabError("nothing to score: no references")


def exact_match(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Share of hypotheses identical to their reference (0..1)."""
    _check(hyps, refs)
    return sum(h == r for h, r in zip(hyps, refs)) / len(refs)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (dynamic programming, one row at a time)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def char_error_rate(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Total character edit distance over total reference characters (0 = perfect)."""
    _check(hyps, refs)
    total = sum(len(r) for r in refs)
    if total == 0:
        raise AttnlabError("cannot compute a character error rate: every reference is empty")
    return sum(edit_distance(h, r) for h, r in zip(hyps, refs)) / total


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus BLEU (0..100) computed by sacrebleu with its default settings."""
    import sacrebleu

    _check(hyps, refs)
    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score)


def translation_metrics(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """``{"exact_match": 0..1, "cer": >= 0, "bleu": 0..100, "n": N}``."""
    return {"exact_match": exact_match(hyps, refs), "cer": char_error_rate(hyps, refs),
            "bleu": bleu(hyps, refs), "n": len(refs)}

