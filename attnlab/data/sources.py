"""Corpus sources read as a stream, never whole: text files, folders, built-in corpora, tables.

:func:`open_source` turns what a user typed (``attnlab prepare SOURCE``) into a :class:`Source`.
``source.pieces()`` yields the source's text as :class:`Piece` s of at most a few MiB, exactly the
text :func:`attnlab.data.corpora.load_corpus` would return, in order:

- a UTF-8 text file: its text, byte-order mark dropped, line endings made ``\\n``;
- a folder: every ``.txt`` file below it in sorted order, each stripped of leading and trailing
  newlines, blank files skipped, joined with blank lines, one ``\\n`` at the end;
- a built-in corpus name (``attnlab corpora``): the play text;
- a ``.jsonl`` / ``.parquet`` / ``.arrow`` file: the rows of its text column, joined like the files
  of a folder (see :mod:`attnlab.data.tables`).

Folders and tables have *documents* (files, rows): each piece says which non-empty document it
belongs to, so the held-out split can take whole documents. ``source.identity()`` says what the
source is (path, size, modification time and a hash of sampled blocks) without reading it whole,
so a prepared folder or a cache entry can tell that its source changed.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnlab.data.text_files import stream_text_file
from attnlab.errors import AttnlabError

BLOCK_BYTES = 1 << 20  # text files are read 1 MiB at a time
SAMPLED_BLOCKS = 16  # the fingerprint hashes this many blocks spread over a file ...
SAMPLED_BLOCK_BYTES = 1 << 16  # ... of this size (files up to 1 MiB are hashed whole)
TABLE_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".arrow": "arrow",
                  ".feather": "arrow"}


@dataclass(frozen=True)
class Piece:
    """A stretch of the source's text: ``doc`` is the index of the non-empty document it belongs to
    (0 for a source without documents), ``done_bytes`` how many source bytes are read so far."""

    text: str
    doc: int
    done_bytes: int


# --------------------------------------------------------------------------- fingerprints


def file_fingerprint(path: Path, size: int) -> str:
    """A hash of ``SAMPLED_BLOCKS`` blocks spread evenly over the file (all of it when small)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(size).encode())
    block, count = SAMPLED_BLOCK_BYTES, SAMPLED_BLOCKS
    try:
        with path.open("rb") as handle:
            if size <= block * count:
                digest.update(handle.read())
            else:
                for i in range(count):
                    handle.seek((size - block) * i // (count - 1))
                    digest.update(handle.read(block))
    except OSError as err:
        raise AttnlabError(f"cannot read {path}: {err.strerror or err}") from None
    return digest.hexdigest()


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as err:
        raise AttnlabError(f"cannot read {path}: {err.strerror or err}") from None


def file_identity(path: Path) -> dict[str, Any]:
    """Size, modification time (ns) and sampled-block hash of one file."""
    stat = _stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "fingerprint": file_fingerprint(path, stat.st_size)}


# --------------------------------------------------------------------------- joining documents


def join_documents(documents: Iterable[Iterable[tuple[str, int]]]) -> Iterator[Piece]:
    """The folder rule for a stream of documents, each a stream of ``(text, bytes read so far)``:
    leading and trailing newlines of each document dropped, blank documents skipped, documents
    joined with ``"\\n\\n"`` and the whole ended with ``"\\n"``. Pieces are tagged with the index
    of their non-empty document; the separator after a document belongs to that document."""
    doc, done = -1, 0
    for parts in documents:
        held: list[str] = []  # text not yet known to be more than whitespace, or trailing newlines
        started = False
        for text, done in parts:
            if not text:
                continue
            if not started:
                held.append(text)
                if text.isspace():
                    continue
                text = "".join(held).lstrip("\n")
                held, started = [], True
                if doc >= 0:
                    yield Piece("\n\n", doc, done)
                doc += 1
            elif held:
                text = "".join(held) + text
                held = []
            body = text.rstrip("\n")
            if len(body) < len(text):
                held.append(text[len(body):])
            if body:
                yield Piece(body, doc, done)
    if doc >= 0:
        yield Piece("\n", doc, done)


# --------------------------------------------------------------------------- sources


class Source(ABC):
    """A corpus to prepare: its identity, its size in bytes (for progress), its text as pieces."""

    kind: str
    has_documents = False

    def __init__(self, spec: str, path: Path | None) -> None:
        self.spec, self.path = spec, path

    @property
    @abstractmethod
    def total_bytes(self) -> int:
        """Bytes :meth:`pieces` reads in all (what the progress bar counts to)."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What the source is now: kind, path, size, mtime_ns, fingerprint (JSON-able)."""

    @abstractmethod
    def pieces(self) -> Iterator[Piece]:
        """The text, in order; raises :class:`AttnlabError` for unreadable or empty sources."""

    @property
    def name(self) -> str:
        """A short name for folders and messages (the file or corpus name without suffix)."""
        return self.path.stem if self.path is not None else self.spec

    def _base(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "path": str(self.path) if self.path else None}


class TextFileSource(Source):
    """One UTF-8 text file (any suffix but the table ones)."""

    kind = "text"

    @property
    def total_bytes(self) -> int:
        return _stat(self.path).st_size

    def identity(self) -> dict[str, Any]:
        return {**self._base(), **file_identity(self.path)}

    def pieces(self) -> Iterator[Piece]:
        empty = True
        for text, done in stream_text_file(self.path, BLOCK_BYTES):
            if empty and text and not text.isspace():
                empty = False
            if text:
                yield Piece(text, 0, done)
        if empty:
            raise AttnlabError(f"{self.path} is empty; give a file with some text in it")


class FolderSource(Source):
    """Every ``.txt`` file below a folder (sorted), joined as :func:`load_corpus` joins them."""

    kind = "folder"
    has_documents = True

    def __init__(self, spec: str, path: Path) -> None:
        super().__init__(spec, path)
        self.files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not self.files:
            raise AttnlabError(f"the folder {path} has no .txt files in it (searched all sub-folders)")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def total_bytes(self) -> int:
        return sum(_stat(p).st_size for p in self.files)

    def identity(self) -> dict[str, Any]:
        digest = hashlib.blake2b(digest_size=16)
        size, mtime = 0, 0
        for path in self.files:
            ident = file_identity(path)
            size, mtime = size + ident["size"], max(mtime, ident["mtime_ns"])
            digest.update(f"{path.relative_to(self.path).as_posix()}\0{ident['fingerprint']}\n".encode())
        return {**self._base(), "files": len(self.files), "size": size, "mtime_ns": mtime,
                "fingerprint": digest.hexdigest()}

    def pieces(self) -> Iterator[Piece]:
        base = 0

        def documents() -> Iterator[Iterator[tuple[str, int]]]:
            nonlocal base
            for path in self.files:
                yield ((text, base + done) for text, done in stream_text_file(path, BLOCK_BYTES))
                base += _stat(path).st_size

        any_text = False
        for piece in join_documents(documents()):
            any_text = True
            yield piece
        if not any_text:
            raise AttnlabError(f"every .txt file in {self.path} is empty ({len(self.files)} files)")


class CorpusSource(Source):
    """A built-in corpus (a Shakespeare play, or all of them): small, so held as one text."""

    kind = "corpus"

    def __init__(self, spec: str) -> None:
        from attnlab.data.corpora import load_corpus

        super().__init__(spec, None)
        self.text = load_corpus(spec)
        self.encoded_size = len(self.text.encode("utf-8"))

    @property
    def total_bytes(self) -> int:
        return self.encoded_size

    def identity(self) -> dict[str, Any]:
        digest = hashlib.blake2b(self.text.encode("utf-8"), digest_size=16).hexdigest()
        return {**self._base(), "size": self.encoded_size, "mtime_ns": None, "fingerprint": digest}

    def pieces(self) -> Iterator[Piece]:
        step = BLOCK_BYTES
        for start in range(0, len(self.text), step):
            text = self.text[start: start + step]
            yield Piece(text, 0, min(self.encoded_size, round(self.encoded_size * (start + len(text))
                                                              / len(self.text))))


def _looks_like_path(spec: str | Path) -> bool:
    name = str(spec)
    return isinstance(spec, Path) or "/" in name or "\\" in name or bool(Path(name).suffix)
