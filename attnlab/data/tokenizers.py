"""Tokenizers: text <-> integer ids, saved with a run as one JSON file (``tokenizer.json``).

Three kinds, all trained on the corpus itself:

- ``char``: one id per distinct character, ids in sorted character order (as nanoGPT does).
  A character never seen in training cannot be encoded: by default :meth:`CharTokenizer.encode`
  raises :class:`AttnlabError` naming the characters; ``encode(text, unknown="skip")`` drops
  them instead (the chat REPL uses this, so a typo never crashes it). A char tokenizer trained
  with special tokens (translation tasks) maps unseen characters to ``<unk>``.
- ``bpe``: byte-level byte-pair encoding trained with the Hugging Face ``tokenizers`` library.
  Its alphabet is all 256 bytes, so any text encodes and decodes exactly (unseen characters and
  emoji fall back to their UTF-8 bytes). Saved as a plain Hugging Face ``tokenizer.json``.
- ``word``: whitespace-and-punctuation words for translation. Each word or punctuation mark
  carries the single space in front of it (as GPT-2's pre-tokenizer does), so decoding is a
  plain join and ``decode(encode(s)) == s`` whenever every word is known; unknown words map to
  ``<unk>``.

Special tokens for sequence-to-sequence data (``SEQ2SEQ_SPECIALS``) take ids 0..3:
``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``; ``pad_id`` and friends are ``None`` when absent.
Language-model char and BPE tokenizers have no specials by default.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.data.tokenizer_base import (
    _UNKNOWN_POLICIES,
    BOS,
    DEFAULT_BPE_VOCAB,
    EOS,
    FORMAT_VERSION,
    PAD,
    SEQ2SEQ_SPECIALS,
    UNK,
    Tokenizer,
    _check_specials,
    _describe_unknown,
)
from attnlab.errors import AttnlabError

__all__ = ["BOS", "DEFAULT_BPE_VOCAB", "EOS", "FORMAT_VERSION", "PAD", "SEQ2SEQ_SPECIALS", "UNK", "BPETokenizer",
           "CharTokenizer", "Tokenizer", "WordTokenizer", "load_tokenizer", "make_tokenizer", "split_words",
           "tokenizer_from_dict"]

MAX_TOKENIZER_BYTES = 256 << 20  # GPT-2's 50,257-token tokenizer.json is 1.4 MB


class CharTokenizer(Tokenizer):
    """One id per character: specials first (if any), then the training text's characters, sorted."""

    kind = "char"

    def __init__(self, chars: Iterable[str], specials: Sequence[str] = ()):
        chars = sorted(set(chars))
        if any(len(c) != 1 for c in chars):
            raise AttnlabError("a char tokenizer's vocabulary must be single characters")
        if not chars:
            raise AttnlabError("cannot build a char tokenizer from empty text")
        self.specials = _check_specials(specials)
        self.chars = chars
        self._offset = len(self.specials)
        self._stoi = {c: i + self._offset for i, c in enumerate(chars)}
        self._codepoints = np.array([ord(c) for c in chars], dtype=np.int64)  # sorted, for fast encode

    @classmethod
    def train(cls, text: str, specials: Sequence[str] = ()) -> CharTokenizer:
        """Vocabulary = the distinct characters of ``text`` (in sorted order) after ``specials``."""
        return cls(set(text), specials)

    @property
    def vocab_size(self) -> int:
        return self._offset + len(self.chars)

    def id_to_token(self, token_id: int) -> str:
        (token_id,) = self._checked([token_id])
        return self.specials[token_id] if token_id < self._offset else self.chars[token_id - self._offset]

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        policy = self._unknown_policy(unknown)
        if not text:
            return []
        codepoints = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(
            np.int64
        )
        index = np.searchsorted(self._codepoints, codepoints).clip(max=len(self.chars) - 1)
        known = self._codepoints[index] == codepoints
        if not known.all():
            if policy == "error":
                unseen = {chr(c) for c in codepoints[~known].tolist()}
                raise AttnlabError(
                    f"the text has {_describe_unknown(unseen, 'character', self.kind)}. "
                    "Remove or replace them, retrain with a corpus that contains them, "
                    "or use the bpe tokenizer, which encodes any text."
                )
            if policy == "skip":
                return (index[known] + self._offset).tolist()
            ids = index + self._offset
            ids[~known] = self.unk_id
            return ids.tolist()
        return (index + self._offset).tolist()

    def decode(self, ids: Any, skip_special: bool = True) -> str:
        dropped = self._dropped_on_decode(skip_special)
        return "".join(self.id_to_token_unchecked(i) for i in self._checked(ids) if i not in dropped)

    def id_to_token_unchecked(self, token_id: int) -> str:
        return self.specials[token_id] if token_id < self._offset else self.chars[token_id - self._offset]

    def to_dict(self) -> dict[str, Any]:
        return {
            "attnlab_tokenizer": FORMAT_VERSION,
            "kind": self.kind,
            "specials": list(self.specials),
            "chars": "".join(self.chars),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        return cls(list(data["chars"]), data.get("specials", ()))


# --------------------------------------------------------------------------- word

# A word (letters/digits) or one punctuation mark, each with the one space before it, or other
# whitespace runs on their own: the pieces always join back into the original text.
_WORD_PIECE = re.compile(r" ?\w+| ?[^\w\s]|\s+")


def split_words(text: str) -> list[str]:
    """Split text into word tokens: ``"mercredi 9 mai"`` -> ``["mercredi", " 9", " mai"]``."""
    return _WORD_PIECE.findall(text)


class WordTokenizer(Tokenizer):
    """Whitespace-and-punctuation words; each token keeps the single space before it.

    ``"Wednesday, May 9, 2018"`` -> ``["Wednesday", ",", " May", " 9", ",", " 2018"]``, so
    :meth:`decode` is a plain join and round-trips exactly for known words. Vocabulary: the
    specials (default ``<pad> <bos> <eos> <unk>``), then words by decreasing count (ties in
    sorted order), optionally capped at ``max_vocab`` ids in all.
    """

    kind = "word"

    def __init__(self, words: Sequence[str], specials: Sequence[str] = SEQ2SEQ_SPECIALS):
        self.specials = _check_specials(specials)
        self.words = list(words)
        self._itos = list(self.specials) + self.words
        self._stoi = {w: i + len(self.specials) for i, w in enumerate(self.words)}
        if len(self._stoi) != len(self.words) or set(self._stoi) & set(self.specials):
            raise AttnlabError("a word tokenizer's vocabulary must not repeat a word or a special token")

    @classmethod
    def train(
        cls, text: str, specials: Sequence[str] = SEQ2SEQ_SPECIALS, max_vocab: int | None = None
    ) -> WordTokenizer:
        counts = Counter(split_words(text))
        if not counts:
            raise AttnlabError("cannot build a word tokenizer from empty text")
        words = sorted(counts, key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            if max_vocab <= len(specials):
                raise AttnlabError(
                    f"the word vocabulary size must be more than the {len(specials)} special tokens, "
                    f"got {max_vocab}"
                )
            words = words[: max_vocab - len(specials)]
        return cls(words, specials)

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def id_to_token(self, token_id: int) -> str:
        (token_id,) = self._checked([token_id])
        return self._itos[token_id]

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        policy = self._unknown_policy(unknown)
        pieces = split_words(text)
        ids = [self._stoi.get(p, -1) for p in pieces]
        if -1 not in ids:
            return ids
        if policy == "error":
            unseen = [p for p, i in zip(pieces, ids) if i < 0]
            raise AttnlabError(
                f"the text has {_describe_unknown(unseen, 'word', self.kind)}. "
                "Rephrase with known words, or use encode(..., unknown='skip')."
            )
        if policy == "skip":
            return [i for i in ids if i >= 0]
        return [i if i >= 0 else self.unk_id for i in ids]

    def decode(self, ids: Any, skip_special: bool = True) -> str:
        dropped = self._dropped_on_decode(skip_special)
        return "".join(self._itos[i] for i in self._checked(ids) if i not in dropped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attnlab_tokenizer": FORMAT_VERSION,
            "kind": self.kind,
            "specials": list(self.specials),
            "words": self.words,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        return cls(data["words"], data.get("specials", ()))


# --------------------------------------------------------------------------- bpe


def _text_chunks(text: str, chunk_chars: int = 1 << 16) -> Iterable[str]:
    """Pieces of about ``chunk_chars`` characters, cut after a newline, for the BPE trainer."""
    start = 0
    while start < len(text):
        end = min(len(text), start + chunk_chars)
        newline = text.rfind("\n", start, end)
        if end < len(text) and newline > start:
            end = newline + 1
        yield text[start:end]
        start = end


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style) trained with Hugging Face ``tokenizers``; exact for any text."""

    kind = "bpe"

    def __init__(self, hf_tokenizer: Any):
        self._hf = hf_tokenizer
        added = hf_tokenizer.get_added_tokens_decoder()
        self.specials = tuple(added[i].content for i in sorted(added))

    def _special_id(self, token: str) -> int | None:
        return self._hf.token_to_id(token) if token in self.specials else None

    @classmethod
    def min_vocab_size(cls, specials: Sequence[str] = ()) -> int:
        """256 byte tokens, the specials, and room for at least one merge."""
        return 256 + len(specials) + 1

    @classmethod
    def train(
        cls, text: str, vocab_size: int = DEFAULT_BPE_VOCAB, specials: Sequence[str] = ()
    ) -> BPETokenizer:
        """Learn merges on ``text`` until ``vocab_size`` ids (fewer if the text runs out of pairs)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        specials = _check_specials(specials)
        minimum = cls.min_vocab_size(specials)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < minimum:
            raise AttnlabError(
                f"the bpe vocabulary size must be an integer of at least {minimum} (256 byte tokens, "
                f"{len(specials)} special tokens and one merge), got {vocab_size!r}; try {DEFAULT_BPE_VOCAB}"
            )
        if not text:
            raise AttnlabError("cannot train a bpe tokenizer on empty text")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(specials),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(_text_chunks(text), trainer=trainer, length=None)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self._hf.get_vocab_size(with_added_tokens=True)

    def id_to_token(self, token_id: int) -> str:
        (token_id,) = self._checked([token_id])
        if self._hf.id_to_token(token_id) in self.specials:
            return self._hf.id_to_token(token_id)
        return self._hf.decode([token_id], skip_special_tokens=False)

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        """Any text encodes (unseen characters become their UTF-8 bytes); ``unknown`` is accepted
        for a uniform interface and has nothing to do."""
        if unknown is not None and unknown not in _UNKNOWN_POLICIES:
            raise AttnlabError(f"unknown must be one of {', '.join(_UNKNOWN_POLICIES)}, got {unknown!r}")
        return self._hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Any, skip_special: bool = True) -> str:
        ids = self._checked(ids)
        if skip_special:
            dropped = self._dropped_on_decode(True)
            ids = [i for i in ids if i not in dropped]
        return self._hf.decode(ids, skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        """The Hugging Face ``tokenizer.json`` layout itself (loadable by ``tokenizers`` and
        ``transformers.PreTrainedTokenizerFast(tokenizer_file=...)``)."""
        return json.loads(self._hf.to_str())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(json.dumps(data)))

    @property
    def hf_tokenizer(self) -> Any:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._hf


# --------------------------------------------------------------------------- factory and loading

TOKENIZER_KINDS: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "bpe": BPETokenizer,
    "word": WordTokenizer,
}


def make_tokenizer(
    kind: str, text: str, vocab_size: int | None = None, specials: Sequence[str] | None = None
) -> Tokenizer:
    """Train a tokenizer of ``kind`` ("char", "bpe" or "word") on ``text``.

    ``vocab_size``: the BPE vocabulary (default 1024) or the word vocabulary cap (default: every
    word); ignored for ``char``. ``specials``: default none for char and bpe, ``SEQ2SEQ_SPECIALS``
    for word.
    """
    if kind == "char":
        return CharTokenizer.train(text, specials=specials or ())
    if kind == "bpe":
        return BPETokenizer.train(
            text, DEFAULT_BPE_VOCAB if vocab_size is None else vocab_size, specials or ()
        )
    if kind == "word":
        return WordTokenizer.train(
            text, SEQ2SEQ_SPECIALS if specials is None else specials, max_vocab=vocab_size
        )
    raise AttnlabError(f"unknown tokenizer kind {kind!r}; choose one of: {', '.join(TOKENIZER_KINDS)}")


def tokenizer_from_dict(data: Any, source: str = "the tokenizer data") -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_dict` output (the kind is detected)."""
    if not isinstance(data, dict):
        raise AttnlabError(f"{source} is not a tokenizer (expected a JSON object)")
    if "attnlab_tokenizer" in data:
        kind = data.get("kind")
    elif isinstance(data.get("model"), dict) and data["model"].get("type") == "BPE":
        kind = "bpe"  # a Hugging Face tokenizer.json
    else:
        raise AttnlabError(f"{source} is not an attnlab or Hugging Face BPE tokenizer")
    if kind not in TOKENIZER_KINDS:
        raise AttnlabError(f"{source} has an unknown tokenizer kind {kind!r}")
    try:
        return TOKENIZER_KINDS[kind].from_dict(data)
    except AttnlabError:
        raise
    except Exception as err:  # corrupt fields: missing keys, wrong types, rejected by `tokenizers`
        raise AttnlabError(f"{source} is a corrupt {kind} tokenizer ({type(err).__name__}: {err})") from None


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer saved by :meth:`Tokenizer.save`: a file, or a run folder with ``tokenizer.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise AttnlabError(f"no tokenizer file at {path}; is this a run folder written by attnlab?")
    size = path.stat().st_size
    if size > MAX_TOKENIZER_BYTES:
        raise AttnlabError(f"{path} is {size:,} bytes, far more than a tokenizer ever is (at most "
                           f"{MAX_TOKENIZER_BYTES:,}); it is not an attnlab tokenizer")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AttnlabError(f"{path} is not a valid tokenizer file (corrupt JSON: {err})") from None
    except RecursionError:
        raise AttnlabError(f"{path} is not a valid tokenizer file (JSON nested too deeply)") from None
    except OSError as err:
        raise AttnlabError(f"cannot read the tokenizer {path}: {err.strerror or err}") from None
    return tokenizer_from_dict(data, source=str(path))
