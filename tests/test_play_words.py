"""The readable-text measure: the share of a sample's words found in Shakespeare's plays."""

from __future__ import annotations

import math

from attnlab.data.play_words import play_word_share, share_note, words


def test_words_are_lower_case_letters_with_inner_apostrophes():
    assert words("O'er the HILL, 'tis 3 o'clock--ay!") == ["o'er", "the", "hill", "tis", "o'clock", "ay"]


def test_share_counts_occurrences_against_the_plays():
    share, count = play_word_share("Friends, Romans, countrymen, lend me your ears")
    assert (share, count) == (1.0, 7)
    share, count = play_word_share("Brutus qzxv brutus blorptic")
    assert count == 4 and math.isclose(share, 0.5)
    share, count = play_word_share("... 123 !!")
    assert count == 0 and math.isnan(share)
    assert share_note("the cat sat") == "100.0% of the sample's 3 words are words of Shakespeare's plays"
