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
        self.kind = tokenizer.kind
        # The fast way works on UTF-8 bytes: bytes.translate maps every ASCII byte to its id (ASCII
        # characters sort first, so their ids fit a byte unless there are 128+ special tokens); the
        # few multi-byte characters are decoded with NumPy and their continuation bytes dropped.
        ascii_ids = np.where(self.known[:128], self.table[:128].astype(np.int64), 0)
        self.byte_table = bytes(ascii_ids.tolist() + [0] * 128) if ascii_ids.max() < 256 else None
        self.unknown_ascii = bytes((~self.known[:128]).astype(np.uint8).tolist() + [0] * 128)
        self.ascii_known = bool(self.known[:128].all())

    def __call__(self, text: str) -> np.ndarray:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (JSON can hold them): the plain way
            data = None
        if data is None or self.byte_table is None or (
                not self.ascii_known and b"\x01" in data.translate(self.unknown_ascii)):
            return self._by_codepoint(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32))
        ids = np.frombuffer(data.translate(self.byte_table), dtype=np.uint8)
        if len(data) == len(text):  # all ASCII
            return ids if self.dtype == np.uint8 else ids.astype(self.dtype)
        raw = np.frombuffer(data, dtype=np.uint8)
        high = np.flatnonzero(raw >= 0x80)
        is_lead = raw[high] >= 0xC0
        leads = high[is_lead]
        last = len(raw) - 1
        b0 = raw[leads].astype(np.int64)
        b1, b2, b3 = (raw[np.minimum(leads + k, last)].astype(np.int64) & 0x3F for k in (1, 2, 3))
        codes = np.where(b0 >= 0xF0, ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3,
                         np.where(b0 >= 0xE0, ((b0 & 0x0F) << 12) | (b1 << 6) | b2, ((b0 & 0x1F) << 6) | b1))
        out = ids.astype(self.dtype)
        out[leads] = self._by_codepoint(codes)
        keep = np.ones(len(raw), dtype=bool)
        keep[high[~is_lead]] = False
        return out[keep]

    def _by_codepoint(self, codes: np.ndarray) -> np.ndarray:
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
    """Re-cut a stream of texts into strings of exactly ``target`` characters (the last may be less):
    small texts are joined, big ones sliced, so the memory in flight stays bounded."""
    parts: list[str] = []
    size = 0
    for text in texts:
        parts.append(text)
        size += len(text)
        if size < target:
            continue
        buf = "".join(parts) if len(parts) > 1 else parts[0]
        start = 0
        while len(buf) - start >= target:
            yield buf[start: start + target]
            start += target
        parts, size = ([buf[start:]], len(buf) - start) if start < len(buf) else ([], 0)
    if size:
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
