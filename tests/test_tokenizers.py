"""Tokenizers: exact round-trips, unknown characters, specials, saving and loading."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.data.corpora import load_corpus
from attnlab.data.tokenizers import (
    SEQ2SEQ_SPECIALS,
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
    make_tokenizer,
    split_words,
)
from attnlab.errors import AttnlabError

JC_OPENING = load_corpus("julius-caesar")[:20_000]


@lru_cache(maxsize=1)
def bpe() -> BPETokenizer:
    return BPETokenizer.train(JC_OPENING, vocab_size=400)


# --------------------------------------------------------------------------- char


def test_char_ids_are_sorted_characters_like_nanogpt():
    tok = CharTokenizer.train("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert tok.vocab_size == 8
    assert tok.encode("hello") == [sorted(set("hello world")).index(c) for c in "hello"]
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (None, None, None, None)


@given(st.text(min_size=1, max_size=300))
@settings(max_examples=150, deadline=None)
def test_char_round_trip_any_text(text):
    tok = CharTokenizer.train(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text


def test_char_round_trip_on_the_corpus():
    text = load_corpus("julius-caesar")
    tok = CharTokenizer.train(text)
    assert tok.vocab_size == len(set(text))
    assert tok.decode(tok.encode(text)) == text


def test_char_unknown_characters_error_names_them():
    tok = CharTokenizer.train("abc ")
    with pytest.raises(AttnlabError) as err:
        tok.encode("a béd 😀")
    message = str(err.value)
    assert "'é'" in message and "'d'" in message and "'😀'" in message and "3 characters" in message
    assert "bpe" in message  # says what to do


def test_char_unknown_skip_drops_them():
    tok = CharTokenizer.train("abc ")
    assert tok.decode(tok.encode("a béd 😀", unknown="skip")) == "a b "


def test_char_specials_take_ids_0_to_3_and_unknown_maps_to_unk():
    tok = CharTokenizer.train("abc", specials=SEQ2SEQ_SPECIALS)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.vocab_size == 7
    assert tok.encode("abz") == [4, 5, 3]
    assert tok.decode([1, 4, 3, 2, 0, 0]) == "a<unk>"
    assert tok.decode([1, 4, 2], skip_special=False) == "<bos>a<eos>"
    assert tok.tokens([0, 6]) == ["<pad>", "c"]


def test_decode_accepts_tensors_and_arrays_and_checks_range():
    tok = CharTokenizer.train("abc")
    assert tok.decode(torch.tensor([0, 1, 2])) == "abc"
    assert tok.decode(np.array([2, 1], dtype=np.int32)) == "cb"
    with pytest.raises(AttnlabError, match="outside"):
        tok.decode([3])


def test_bad_unknown_policy():
    with pytest.raises(AttnlabError, match="unknown must be one of"):
        CharTokenizer.train("ab").encode("a", unknown="ignore")
    with pytest.raises(AttnlabError, match="no <unk>"):
        CharTokenizer.train("ab").encode("a", unknown="unk")


# --------------------------------------------------------------------------- bpe


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_bpe_round_trips_any_unicode(text):
    tok = bpe()
    assert tok.decode(tok.encode(text)) == text


def test_bpe_unseen_characters_and_emoji_fall_back_to_bytes():
    tok = bpe()
    text = "Friends, Romans, 日本語 😀 — naïve\r\n\x00"
    assert "😀" not in JC_OPENING
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert len(tok.encode("😀")) == 4  # four UTF-8 bytes, one token each


def test_bpe_compresses_its_training_text_and_is_deterministic():
    tok = bpe()
    assert tok.vocab_size == 400
    assert len(tok.encode(JC_OPENING)) < 0.6 * len(JC_OPENING.encode("utf-8"))
    again = BPETokenizer.train(JC_OPENING, vocab_size=400)
    assert again.to_dict() == tok.to_dict()


@pytest.mark.parametrize("vocab_size", [0, 100, 256, 257 - 1, 260.5, True])
def test_bpe_vocab_size_is_validated(vocab_size):
    with pytest.raises(AttnlabError, match="at least 257"):
        BPETokenizer.train("some text", vocab_size=vocab_size)


def test_bpe_minimum_vocab_counts_specials():
    with pytest.raises(AttnlabError, match="at least 261"):
        BPETokenizer.train("some text", vocab_size=260, specials=SEQ2SEQ_SPECIALS)
    tok = BPETokenizer.train("some text " * 10, vocab_size=300, specials=SEQ2SEQ_SPECIALS)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    ids = [tok.bos_id, *tok.encode("some text"), tok.eos_id, tok.pad_id]
    assert tok.decode(ids) == "some text"


def test_bpe_saves_a_hugging_face_tokenizer_json(tmp_path):
    from tokenizers import Tokenizer as HFTokenizer

    path = bpe().save(tmp_path / "tokenizer.json")
    hf = HFTokenizer.from_file(str(path))
    assert hf.encode("Friends, Romans").ids == bpe().encode("Friends, Romans")


# --------------------------------------------------------------------------- word


def test_word_split_keeps_spaces_so_decode_is_exact():
    assert split_words("Wednesday, May 9, 2018") == ["Wednesday", ",", " May", " 9", ",", " 2018"]
    assert split_words("2018-05-09") == ["2018", "-", "05", "-", "09"]
    assert "".join(split_words("Mittwoch,  9. Mai\u202f2018 ")) == "Mittwoch,  9. Mai\u202f2018 "


@given(st.text(max_size=200))
@settings(max_examples=150, deadline=None)
def test_word_round_trip_any_text_with_known_words(text):
    tok = WordTokenizer.train(text or "x")
    assert tok.decode(tok.encode(text)) == text


def test_word_unknown_words_map_to_unk_and_vocab_is_by_frequency():
    tok = WordTokenizer.train("the cat the dog the cat the")
    assert tok.words == [" the", " cat", " dog", "the"]  # by count, ties in sorted order
    assert tok.specials == SEQ2SEQ_SPECIALS
    ids = tok.encode("the cow")
    assert ids == [tok.words.index("the") + 4, tok.unk_id]
    assert tok.decode(ids) == "the<unk>"
    assert tok.tokens(ids) == ["the", "<unk>"]
    capped = WordTokenizer.train("the cat the dog the cat the", max_vocab=6)
    assert capped.vocab_size == 6 and capped.words == [" the", " cat"]


def test_word_without_specials_errors_on_unknown_words():
    tok = WordTokenizer.train("a b c", specials=())
    with pytest.raises(AttnlabError, match="' z'"):
        tok.encode("a z")
    assert tok.encode("a z", unknown="skip") == tok.encode("a")


# --------------------------------------------------------------------------- factory, save, load


@pytest.mark.parametrize("kind", ["char", "bpe", "word"])
def test_save_and_load_round_trip(tmp_path, kind):
    tok = make_tokenizer(kind, JC_OPENING, vocab_size=300 if kind == "bpe" else None)
    assert tok.kind == kind
    path = tok.save(tmp_path / "run" / "tokenizer.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["tokenizer.json"]  # no temporary left
    loaded = load_tokenizer(tmp_path / "run")  # a run folder works too
    assert type(loaded) is type(tok)
    assert loaded.vocab_size == tok.vocab_size
    assert loaded.specials == tok.specials
    start = JC_OPENING.index("\n", 5000) + 1
    sample = JC_OPENING[start : JC_OPENING.index("\n", 6000) + 1]  # whole words
    assert loaded.encode(sample) == tok.encode(sample)
    assert loaded.decode(tok.encode(sample)) == sample


def test_make_tokenizer_defaults_and_unknown_kind():
    assert make_tokenizer("char", "abc").specials == ()
    assert make_tokenizer("word", "abc").specials == SEQ2SEQ_SPECIALS
    assert make_tokenizer("bpe", JC_OPENING).vocab_size == 1024
    with pytest.raises(AttnlabError, match="char, bpe, word"):
        make_tokenizer("sentencepiece", "abc")


def test_empty_training_text_is_an_error():
    for kind in ("char", "bpe", "word"):
        with pytest.raises(AttnlabError, match="empty"):
            make_tokenizer(kind, "")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no tokenizer file"),
        ("{not json", "corrupt JSON"),
        ("[1, 2]", "not a tokenizer"),
        ('{"hello": 1}', "not an attnlab"),
        ('{"attnlab_tokenizer": 1, "kind": "morse"}', "unknown tokenizer kind"),
        ('{"attnlab_tokenizer": 1, "kind": "char"}', "corrupt char tokenizer"),
        ('{"attnlab_tokenizer": 1, "kind": "word", "words": ["a", "a"]}', "must not repeat"),
        ('{"model": {"type": "BPE", "vocab": 3}}', "corrupt bpe tokenizer"),
    ],
)
def test_load_tokenizer_errors(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(AttnlabError, match=message):
        load_tokenizer(path)


def test_saved_char_tokenizer_is_readable_json(tmp_path):
    path = CharTokenizer.train("ba").save(tmp_path / "t.json")
    assert json.loads(path.read_text(encoding="utf-8"))["chars"] == "ab"
