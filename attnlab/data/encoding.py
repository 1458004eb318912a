"""Fast bulk encoding for ``attnlab prepare``: text chunks -> NumPy token arrays, on every core.

- :class:`CharEncoder`: a lookup table indexed by code point, applied with NumPy (an ASCII chunk is
  looked up byte by byte without decoding anything); the ids are those of
  :meth:`~attnlab.data.tokenizers.CharTokenizer.encode`.
- :class:`BPEEncoder`: the Hugging Face ``tokenizers`` batch encoder, which spreads a batch of
  chunks over all cores in Rust.
- :func:`ordered_map`: run an encoder over a stream of batches in a thread pool (NumPy and
  ``tokenizers`` release the GIL), at most a few batches in flight, results in order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from attnlab.errors import AttnlabError


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


class CharEncoder:
    """Character ids by table lookup: ``table[code point]``; unknown characters raise AttnlabError."""

    def __init__(self, tokenizer: Any, dtype: np.dtype) -> None:
        chars, offset = tokenizer.chars, len(tokenizer.specials)
        codes = np.array([ord(c) for c in chars], dtype=np.int64)
        self.size = max(256, int(codes.max()) + 1)
        self.dtype = np.dtype(dtype)
        self.table = np.zeros(self.size, dtype=self.dtype)
        self.table[codes] = np.arange(len(chars)) + offset
        self.known = np.zeros(self.size, dtype=bool)
        self.known[codes] = True
        self.ascii_known = bool(self.known[:128].all())
        self.kind = tokenizer.kind

    def __call__(self, text: str) -> np.ndarray:
        if text.isascii():
            codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
            if self.ascii_known:
                return self.table.take(codes)
        else:
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            if len(codes) and int(codes.max()) >= self.size:
                self._unknown(codes[codes >= self.size])
        known = self.known.take(codes)
        if not known.all():
            self._unknown(codes[~known])
        return self.table.take(codes)

    def _unknown(self, codes: np.ndarray) -> None:
        unseen = sorted({chr(c) for c in np.unique(codes).tolist()})
        shown = ", ".join(repr(c) for c in unseen[:10]) + (f" and {len(unseen) - 10} more" if len(unseen) > 10 else "")
        raise AttnlabError(f"the text has {len(unseen)} character(s) that this {self.kind} tokenizer never saw: "
                           f"{shown}; prepare with a tokenizer trained on this text, or use bpe")


class BPEEncoder:
    """Byte-level BPE ids for a batch of chunks, encoded in parallel by ``tokenizers``."""

    def __init__(self, tokenizer: Any, dtype: np.dtype) -> None:
        self.hf = tokenizer.hf_tokenizer
        self.dtype = np.dtype(dtype)
        fast = getattr(self.hf, "encode_batch_fast", None)  # no character offsets: quicker
        self._encode_batch = fast or self.hf.encode_batch

    def __call__(self, chunks: list[str]) -> np.ndarray:
        if not chunks:
            return np.empty(0, dtype=self.dtype)
        encodings = self._encode_batch(chunks, add_special_tokens=False)
        arrays = [np.array(e.ids, dtype=self.dtype) for e in encodings]
        return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def coalesce(texts: Iterable[str], target: int) -> Iterator[str]:
    """Join consecutive small texts into strings of at least ``target`` characters (the last may be less)."""
    parts: list[str] = []
    size = 0
    for text in texts:
        parts.append(text)
        size += len(text)
        if size >= target:
            yield "".join(parts)
            parts, size = [], 0
    if parts:
        yield "".join(parts)


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, in_flight: int | None = None
                ) -> Iterator[Any]:
    """``map(fn, items)`` on ``workers`` threads, at most ``in_flight`` items pending, results in order."""
    if workers <= 1:
        yield from map(fn, items)
        return
    in_flight = in_flight or 2 * workers
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="attnlab-encode") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
