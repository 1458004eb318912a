"""What every tokenizer is (:class:`Tokenizer`: encode, decode, specials, save), and the special tokens.

The kinds (char, word, byte-level BPE) and the functions that make and load them live in
:mod:`attnlab.data.tokenizers`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from attnlab.errors import AttnlabError
from attnlab.io import write_json_atomic

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SEQ2SEQ_SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
DEFAULT_BPE_VOCAB = 1024
FORMAT_VERSION = 1
_UNKNOWN_POLICIES = ("error", "skip", "unk")


def _as_id_list(ids: Any) -> list[int]:
    """Accept a list, tuple, NumPy array or tensor of ids (any integer type)."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids]


def _check_specials(specials: Sequence[str]) -> tuple[str, ...]:
    specials = tuple(specials)
    if len(set(specials)) != len(specials) or not all(isinstance(s, str) and s for s in specials):
        raise AttnlabError(f"special tokens must be distinct non-empty strings, got {specials!r}")
    return specials


class Tokenizer(ABC):
    """Text <-> ids. Subclasses set ``kind`` and implement encode/decode/vocabulary/serialisation."""

    kind: ClassVar[str]
    specials: tuple[str, ...] = ()

    # ----- vocabulary
    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids (specials included); valid ids are ``0 .. vocab_size - 1``."""

    @abstractmethod
    def id_to_token(self, token_id: int) -> str:
        """The text of one id (for labels on attention plots); specials as written, e.g. ``<eos>``."""

    def tokens(self, ids: Any) -> list[str]:
        """The text of each id, e.g. for the axes of an alignment plot."""
        return [self.id_to_token(i) for i in self._checked(ids)]

    def _special_id(self, token: str) -> int | None:
        return self.specials.index(token) if token in self.specials else None

    @property
    def pad_id(self) -> int | None:
        return self._special_id(PAD)

    @property
    def bos_id(self) -> int | None:
        return self._special_id(BOS)

    @property
    def eos_id(self) -> int | None:
        return self._special_id(EOS)

    @property
    def unk_id(self) -> int | None:
        return self._special_id(UNK)

    # ----- encoding
    @abstractmethod
    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        """Text -> ids. ``unknown`` says what to do with text outside the vocabulary:
        ``"error"`` (raise AttnlabError), ``"skip"`` (drop it) or ``"unk"`` (map to ``<unk>``);
        ``None`` means ``"unk"`` when the tokenizer has ``<unk>``, else ``"error"``."""

    @abstractmethod
    def decode(self, ids: Any, skip_special: bool = True) -> str:
        """Ids -> text. With ``skip_special`` the ``<pad>``/``<bos>``/``<eos>`` ids are dropped
        (``<unk>`` stays visible as ``<unk>``)."""

    def _checked(self, ids: Any) -> list[int]:
        ids = _as_id_list(ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise AttnlabError(
                f"token id {bad[0]} is outside this {self.kind} tokenizer's vocabulary "
                f"(0..{self.vocab_size - 1}); was the model trained with another tokenizer?"
            )
        return ids

    def _unknown_policy(self, unknown: str | None) -> str:
        if unknown is None:
            return "unk" if self.unk_id is not None else "error"
        if unknown not in _UNKNOWN_POLICIES:
            raise AttnlabError(f"unknown must be one of {', '.join(_UNKNOWN_POLICIES)}, got {unknown!r}")
        if unknown == "unk" and self.unk_id is None:
            raise AttnlabError(
                f"this {self.kind} tokenizer has no <unk> token; use unknown='skip' or 'error'"
            )
        return unknown

    def _dropped_on_decode(self, skip_special: bool) -> set[int]:
        if not skip_special:
            return set()
        return {i for i in (self.pad_id, self.bos_id, self.eos_id) if i is not None}

    # ----- saving
    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description that :func:`load_tokenizer` turns back into this tokenizer."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """Rebuild from :meth:`to_dict`'s output."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as one JSON file, atomically (:func:`attnlab.io.write_atomic`).

        ``path`` may be a file name or an existing folder (then ``tokenizer.json`` inside it).
        """
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        write_json_atomic(path, self.to_dict(), indent=None, ensure_ascii=False)
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, specials={self.specials!r})"


def _describe_unknown(pieces: Iterable[str], what: str, kind: str, limit: int = 10) -> str:
    """E.g. "2 characters that this char tokenizer never saw in training: 'é', '😀'"."""
    pieces = sorted(set(pieces))
    shown = ", ".join(repr(p) for p in pieces[:limit])
    more = f" and {len(pieces) - limit} more" if len(pieces) > limit else ""
    plural = "s" if len(pieces) != 1 else ""
    return f"{len(pieces)} {what}{plural} that this {kind} tokenizer never saw in training: {shown}{more}"


# --------------------------------------------------------------------------- char
