"""ELIZA's text handling: cutting an input into clauses, substituting words, matching patterns.

Pure functions over word tokens, shared by the bot (:mod:`attnlab.eliza.bot`) and nothing
else: :func:`split_clauses` (at punctuation and at "but"; only the first
:data:`MAX_INPUT_CHARS` characters are read), :func:`substitute` (a word-sequence table,
longest match first: ``pre:`` and ``reflect:``) and :func:`match` (a decomposition pattern
against the words of a clause, in linear time). ``docs/eliza-script.md`` explains the patterns.
"""

from __future__ import annotations

import re

from attnlab.eliza.script import WORD, Element, normalise

MAX_INPUT_CHARS = 2000  # work is capped: only the start of a very long line is read

_STOPS = ".,;:!?\u2026\u3002\uff01\uff1f\uff1b\uff0c\u3001"
_TOKEN_RE = re.compile(rf"(?P<word>{WORD})|(?P<stop>[{re.escape(_STOPS)}]+)")

Token = tuple[str, str]  # (the lower-case word used for matching, the word as it will be shown)


def split_clauses(text: str) -> list[list[Token]]:
    """Cut the input into clauses of word tokens at punctuation and at the word "but"."""
    clauses: list[list[Token]] = []
    current: list[Token] = []
    for found in _TOKEN_RE.finditer(normalise(text[:MAX_INPUT_CHARS])):
        word = found.group("word")
        if word is None or word.lower() == "but":
            if current:
                clauses.append(current)
            current = []
            continue
        # the first word of a clause is capitalised by habit, not for a reason: show it lower-case
        current.append((word.lower(), word if current else word.lower()))
    if current:
        clauses.append(current)
    return clauses


def substitute(tokens: list[Token], table: dict[tuple[str, ...], tuple[str, ...]]) -> list[Token]:
    """Replace word sequences by the table, longest match first, scanning left to right."""
    if not table or not tokens:
        return list(tokens)
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for key in sorted(table, key=len, reverse=True):
        by_first.setdefault(key[0], []).append(key)
    words = [t[0] for t in tokens]
    out: list[Token] = []
    i, n = 0, len(words)
    while i < n:
        for key in by_first.get(words[i], ()):
            if tuple(words[i : i + len(key)]) == key:
                out.extend((w.lower(), w) for w in table[key])
                i += len(key)
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def match(elements: tuple[Element, ...], words: list[str]) -> list[tuple[int, int]] | None:
    """Match a decomposition pattern against the words; the (start, end) span of each part, or None.

    Spans are as short as possible from the left (``*`` takes the fewest words that still let
    the rest match). Work is linear in the number of words: a backward pass marks, for each
    element i and position p, whether elements i.. can match words[p:] exactly; a forward
    pass then picks the spans.
    """
    present = set(words)
    if any(e.words is not None and e.words.isdisjoint(present) for e in elements):
        return None  # a word the pattern needs is not there at all
    n = len(words)
    can: list[list[bool]] = [[]] * len(elements) + [[False] * n + [True]]
    for i in range(len(elements) - 1, -1, -1):
        element, after = elements[i], can[i + 1]
        if element.words is not None:
            allowed = element.words
            here = [after[p + 1] and words[p] in allowed for p in range(n)] + [False]
        elif element.max_words is None:  # '*': possible wherever some later position is
            last = n
            while last >= 0 and not after[last]:
                last -= 1
            reach = min(last, n - element.min_words) + 1
            here = [True] * max(reach, 0) + [False] * (n + 1 - max(reach, 0))
        else:  # '#k': exactly k words
            k = element.min_words
            here = after[k:] + [False] * k
        can[i] = here
    if not can[0][0]:
        return None
    spans, p = [], 0
    for i, element in enumerate(elements):
        q = p + element.min_words
        if element.max_words is None:
            while not can[i + 1][q]:
                q += 1
        spans.append((p, q))
        p = q
    return spans

