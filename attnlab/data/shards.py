"""Prepared token folders: the on-disk format, writing shards, and mapping them back without copying.

A prepared folder (written by ``attnlab prepare``) holds::

    meta.json            format version, tokenizer kind, dtype, token counts, source identity, shards
    tokenizer.json       the tokenizer (Tokenizer.save format)
    train-00000.bin ...  token ids, raw little-endian, the smallest unsigned dtype for the vocabulary
    val-00000.bin ...    the held-out split, in its own shard(s)

:class:`TokenShards` maps one split's shards with ``numpy.memmap`` and presents them as one
sequence: indexing or :meth:`TokenShards.windows` reads only the tokens asked for and returns
int64 copies, so a corpus bigger than memory trains from the page cache. Every process (every rank
under torchrun) maps the same files; the operating system shares the pages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.errors import AttnlabError

FORMAT = "attnlab-tokens"
FORMAT_VERSION = 1
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
SPLITS = ("train", "val")
DEFAULT_SHARD_TOKENS = 1 << 28  # 256 Mi tokens: 512 MiB of uint16 per shard


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids ``0 .. vocab_size - 1``."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.bin"


class ShardWriter:
    """Append token ids of one split to ``split-NNNNN.bin`` files of at most ``shard_tokens`` each."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype, shard_tokens: int = DEFAULT_SHARD_TOKENS):
        if shard_tokens < 1:
            raise AttnlabError(f"shard_tokens must be at least 1, got {shard_tokens}")
        self.folder, self.split, self.dtype = Path(folder), split, np.dtype(dtype).newbyteorder("<")
        self.shard_tokens = shard_tokens
        self.shards: list[dict[str, Any]] = []
        self._handle = None
        self._in_shard = 0

    @property
    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards)

    def write(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids)
        if ids.dtype != self.dtype:
            ids = ids.astype(self.dtype)
        while len(ids):
            if self._handle is None or self._in_shard >= self.shard_tokens:
                self._open_next()
            take = min(len(ids), self.shard_tokens - self._in_shard)
            self._handle.write(ids[:take].tobytes())
            self._in_shard += take
            self.shards[-1]["tokens"] += take
            ids = ids[take:]

    def _open_next(self) -> None:
        self._close_current()
        name = shard_name(self.split, len(self.shards))
        self._handle = (self.folder / name).open("wb")
        self.shards.append({"file": name, "tokens": 0})
        self._in_shard = 0

    def _close_current(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self.shards[-1]["bytes"] = self.shards[-1]["tokens"] * self.dtype.itemsize

    def close(self) -> list[dict[str, Any]]:
        """Finish the last shard; return the shard list for ``meta.json``."""
        self._close_current()
        return self.shards


class TokenShards:
    """One split's token ids: memory-mapped shards read as one sequence, never copied whole.

    ``len(tokens)``; ``tokens[i]`` and ``tokens[a:b]`` (int64 copies); :meth:`windows` for a batch
    of equal-length windows; :meth:`to_tensor` for all of it (small data only)."""

    def __init__(self, paths: list[Path], counts: list[int], dtype: np.dtype | str) -> None:
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.paths = [Path(p) for p in paths]
        self.arrays = [np.memmap(p, dtype=self.dtype, mode="r", shape=(n,)) for p, n in zip(self.paths, counts)]
        self.starts = np.cumsum([0] + [len(a) for a in self.arrays], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __repr__(self) -> str:
        return f"TokenShards({len(self):,} tokens, {self.dtype.name}, {len(self.arrays)} shard(s))"

    def _range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty(max(0, stop - start), dtype=np.int64)
        if stop <= start:
            return out
        shard = int(np.searchsorted(self.starts, start, side="right")) - 1
        filled = 0
        while filled < len(out):
            array, base = self.arrays[shard], int(self.starts[shard])
            lo = start + filled - base
            take = min(len(out) - filled, len(array) - lo)
            out[filled: filled + take] = array[lo: lo + take]
            filled += take
            shard += 1
        return out

    def __getitem__(self, key: int | slice) -> np.ndarray | int:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("TokenShards slices take no step")
            return self._range(start, stop)
        index = int(key) + (len(self) if int(key) < 0 else 0)
        if not 0 <= index < len(self):
            raise IndexError(f"token index {key} out of range for {len(self)} tokens")
        return int(self._range(index, index + 1)[0])

    def windows(self, starts: Any, length: int) -> np.ndarray:
        """``(len(starts), length)`` int64: ``tokens[s : s + length]`` for each start (may cross shards)."""
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        if len(starts) and (starts.min() < 0 or starts.max() + length > len(self)):
            raise IndexError(f"a window of {length} tokens runs outside the {len(self)} tokens")
        out = np.empty((len(starts), length), dtype=np.int64)
        if len(self.arrays) == 1:
            array = self.arrays[0]
            for row, start in enumerate(starts.tolist()):
                out[row] = array[start: start + length]
            return out
        for row, start in enumerate(starts.tolist()):
            out[row] = self._range(start, start + length)
        return out

    def to_tensor(self) -> Any:
        """All tokens as one int64 tensor (reads everything: for small corpora and tests)."""
        import torch

        return torch.from_numpy(self._range(0, len(self)))


# --------------------------------------------------------------------------- meta.json and checks


def is_prepared(path: str | Path) -> bool:
    """Whether ``path`` is a folder with a ``meta.json`` (a prepared folder, or a broken one)."""
    path = Path(path).expanduser()
    return path.is_dir() and (path / META_FILE).is_file()


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def read_meta(folder: str | Path) -> dict[str, Any]:
    """``meta.json`` of a prepared folder, checked for the format and version this attnlab reads."""
    folder = Path(folder)
    path = folder / META_FILE
    if not path.is_file():
        raise AttnlabError(f"{folder} is not a prepared folder (no {META_FILE}); make one with 'attnlab prepare'")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise AttnlabError(f"{path} is not readable JSON ({err}); prepare the folder again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise AttnlabError(f"{path} is not an attnlab prepared-tokens file; prepare the folder again")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise AttnlabError(f"{path} is format version {version!r}, and this attnlab reads version "
                           f"{FORMAT_VERSION}; prepare the folder again with this attnlab ('attnlab prepare')")
    try:
        np.dtype(meta["dtype"])
        for split in SPLITS:
            for shard in meta["shards"][split]:
                if not isinstance(shard["file"], str) or not isinstance(shard["tokens"], int):
                    raise TypeError(shard)
    except (KeyError, TypeError, ValueError) as err:
        raise AttnlabError(f"{path} is incomplete or corrupt ({type(err).__name__}: {err}); "
                           "prepare the folder again") from None
    return meta


def open_split(folder: str | Path, meta: dict[str, Any], split: str) -> TokenShards:
    """Map one split's shards, refusing a missing or truncated shard (named in the error)."""
    folder = Path(folder)
    dtype = np.dtype(meta["dtype"])
    paths, counts = [], []
    for shard in meta["shards"][split]:
        path = folder / shard["file"]
        if Path(shard["file"]).name != shard["file"]:
            raise AttnlabError(f"{folder / META_FILE} names a shard outside the folder: {shard['file']!r}")
        expected = shard["tokens"] * dtype.itemsize
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise AttnlabError(f"the shard {path} is missing; prepare {folder} again") from None
        if size != expected:
            kind = "truncated" if size < expected else "longer than meta.json says"
            raise AttnlabError(f"the shard {path} is {kind} ({size:,} bytes, expected {expected:,}); "
                               f"prepare {folder} again")
        if shard["tokens"]:
            paths.append(path)
            counts.append(shard["tokens"])
    if not paths:
        raise AttnlabError(f"{folder} has no {split} tokens; prepare it again")
    return TokenShards(paths, counts, dtype)


@dataclass
class Prepared:
    """A prepared folder, opened: its meta, tokenizer and the two splits mapped."""

    folder: Path
    meta: dict[str, Any]
    tokenizer: Any
    train: TokenShards
    val: TokenShards


def check_source(folder: Path, meta: dict[str, Any]) -> None:
    """Refuse a folder whose source still exists but changed (size, mtime or sampled hash)."""
    from attnlab.data.source_for import open_source

    recorded = meta.get("source") or {}
    path = recorded.get("path")
    if recorded.get("kind") != "corpus" and (not path or not Path(path).exists()):
        return  # the source was moved or deleted: the shards stand on their own
    try:
        now = open_source(path or recorded.get("spec", ""), recorded.get("text_column") or "text").identity()
    except AttnlabError as err:
        raise AttnlabError(f"{folder} was prepared from {path or recorded.get('spec')}, which cannot be read "
                           f"now ({err}); prepare it again") from None
    where = path or recorded.get("spec")
    for key, what in (("size", "its size"), ("mtime_ns", "its modification time"), ("fingerprint", "its content")):
        if now.get(key) != recorded.get(key):
            raise AttnlabError(f"{where} changed since it was prepared into {folder} ({what} differs: "
                               f"{recorded.get(key)} then, {now.get(key)} now); run 'attnlab prepare' again")


def open_prepared(folder: str | Path, verify_source: bool = True) -> Prepared:
    """Open a prepared folder: meta checked, shards mapped (sizes checked), tokenizer loaded, and (with
    ``verify_source``) its source, if still there, checked unchanged."""
    from attnlab.data.tokenizers import load_tokenizer

    folder = Path(folder).expanduser()
    meta = read_meta(folder)
    if verify_source:
        check_source(folder, meta)
    tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
    if tokenizer.kind != meta.get("tokenizer", {}).get("kind") or tokenizer.vocab_size > np.iinfo(
            np.dtype(meta["dtype"])).max + 1:
        raise AttnlabError(f"{folder / TOKENIZER_FILE} does not match {folder / META_FILE}; prepare it again")
    return Prepared(folder, meta, tokenizer, open_split(folder, meta, "train"), open_split(folder, meta, "val"))
