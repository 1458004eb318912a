"""The two streaming passes' text logic: scanning a source, placing the held-out split, cutting chunks.

``attnlab prepare`` reads a source twice, each time as a stream of :class:`~attnlab.data.sources.Piece`:

1. :func:`scan` counts characters and documents, collects the character set (what the char
   tokenizer's vocabulary is) and keeps a bounded, deterministic random sample of the text (what the
   BPE tokenizer is trained on; all of it when the source is small).
2. :func:`split_pieces` sends each stretch of text to ``"train"`` or ``"val"``. A source with two or
   more documents holds out its last ``val_fraction`` of documents; any other source holds out its
   tail exactly as :func:`attnlab.data.corpora.split_train_val` does, holding only the two-thousand
   character window where the cut is placed. :func:`bpe_chunks` then cuts each split's text where
   encoding the chunks one by one gives the same tokens as encoding the whole split at once.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from attnlab.data.corpora import tail_cut, tail_window
from attnlab.data.sources import Piece
from attnlab.errors import AttnlabError

SAMPLE_GROUP_CHARS = 1 << 16  # the BPE sample is drawn in groups of this many characters
MAX_CODEPOINT = 0x10FFFF


@dataclass
class _Group:
    """A stretch of text kept for the BPE sample: its start (in characters) and document starts."""

    start: int
    text: str
    doc_offsets: list[int]
    docs: list[int]


@dataclass
class Scan:
    """What the first pass learned about a source."""

    chars: int = 0
    documents: int = 0
    seen: np.ndarray = field(default_factory=lambda: np.zeros(128, dtype=bool))
    all_sampled: bool = True
    groups: list[_Group] = field(default_factory=list)

    def characters(self) -> list[str]:
        """The distinct characters, in code-point order (the char tokenizer's vocabulary)."""
        return [chr(c) for c in np.flatnonzero(self.seen).tolist()]


def _codepoints(text: str) -> np.ndarray:
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _mark_seen(scan: Scan, text: str) -> None:
    codes = _codepoints(text)
    if codes.dtype == np.uint8:
        counts = np.bincount(codes, minlength=128)
        scan.seen[: len(counts)] |= counts > 0
        return
    top = int(codes.max())
    if top >= len(scan.seen):
        grown = np.zeros(min(MAX_CODEPOINT + 1, max(top + 1, 2 * len(scan.seen))), dtype=bool)
        grown[: len(scan.seen)] = scan.seen
        scan.seen = grown
    scan.seen[codes] = True


def scan(pieces: Iterable[Piece], sample_chars: int, charset: bool = True, seed: int = 0,
         progress: object | None = None) -> Scan:
    """Pass 1: count, collect the character set (if ``charset``) and sample about ``sample_chars``
    characters in groups (reservoir sampling with a fixed seed; everything if the source is small)."""
    result = Scan()
    capacity = max(1, sample_chars // SAMPLE_GROUP_CHARS)
    rng = random.Random(seed)
    parts: list[str] = []
    offsets: list[int] = []
    docs: list[int] = []
    filled, seen_groups = 0, 0

    def close_group() -> None:
        nonlocal parts, offsets, docs, filled, seen_groups
        group = _Group(result.chars - filled, "".join(parts), offsets, docs)
        if charset:
            _mark_seen(result, group.text)
        if len(result.groups) < capacity:
            result.groups.append(group)
        else:
            result.all_sampled = False
            slot = rng.randrange(seen_groups + 1)
            if slot < capacity:
                result.groups[slot] = group
        seen_groups += 1
        parts, offsets, docs, filled = [], [], [], 0

    done = 0
    for piece in pieces:
        text = piece.text
        result.documents = max(result.documents, piece.doc + 1)
        at = 0
        while at < len(text):
            if not docs or docs[-1] != piece.doc:  # where each document starts within the group
                offsets.append(filled)
                docs.append(piece.doc)
            part = text[at: at + SAMPLE_GROUP_CHARS - filled] if at or len(text) > SAMPLE_GROUP_CHARS - filled else text
            at += len(part)
            parts.append(part)
            filled += len(part)
            result.chars += len(part)
            if filled >= SAMPLE_GROUP_CHARS:
                close_group()
        if progress is not None:
            progress.update(piece.done_bytes - done)
            done = piece.done_bytes
    if filled:
        close_group()
    result.groups.sort(key=lambda g: g.start)
    return result


# --------------------------------------------------------------------------- where validation starts


@dataclass(frozen=True)
class SplitPlan:
    """``by == "documents"``: documents ``>= first_val_doc`` are held out; ``by == "tail"``:
    characters from ``cut`` on (``cut`` None until the window is seen, see :func:`split_pieces`)."""

    by: str
    chars: int
    val_fraction: float
    first_val_doc: int = 0
    cut: int | None = None


def plan_split(result: Scan, val_fraction: float, has_documents: bool) -> SplitPlan:
    """Documents when there are two or more (at least one held out, at least one kept), else the tail."""
    if has_documents and result.documents >= 2:
        held = min(result.documents - 1, max(1, round(result.documents * val_fraction)))
        return SplitPlan("documents", result.chars, val_fraction, first_val_doc=result.documents - held)
    tail_window(result.chars, val_fraction)  # raises for a text too short to split
    cut = None
    if result.all_sampled:  # the whole text is in the sample: place the cut now
        _, lo, hi = tail_window(result.chars, val_fraction)
        cut = tail_cut(result.chars, val_fraction, _sample_slice(result, lo, hi))
    return SplitPlan("tail", result.chars, val_fraction, cut=cut)


def _sample_slice(result: Scan, lo: int, hi: int) -> str:
    return "".join(g.text[max(0, lo - g.start): max(0, hi - g.start)] for g in result.groups
                   if g.start < hi and g.start + len(g.text) > lo)


def training_sample(result: Scan, plan: SplitPlan) -> str:
    """The text the BPE tokenizer learns from: the sampled groups cut to the training split. When the
    whole source was sampled this is exactly the training text (what the in-memory path trains on)."""
    if plan.by == "documents":
        texts = []
        for g in result.groups:  # a group's first document starts at its offset 0
            idx = int(np.searchsorted(np.asarray(g.docs), plan.first_val_doc))
            texts.append(g.text[: g.doc_offsets[idx] if idx < len(g.docs) else len(g.text)])
    else:
        end = plan.cut if plan.cut is not None else tail_window(plan.chars, plan.val_fraction)[1]
        texts = [g.text[: max(0, end - g.start)] for g in result.groups]
    texts = [t for t in texts if t]
    return "".join(texts) if result.all_sampled else "\n".join(texts)


# --------------------------------------------------------------------------- pass 2: routing text


def split_pieces(pieces: Iterable[Piece], plan: SplitPlan, progress: object | None = None
                 ) -> Iterator[tuple[str, str]]:
    """Pass 2: ``(split, text)`` for the source's text in order, ``"train"`` then ``"val"``.

    Raises :class:`AttnlabError` if the text is not as long as the first pass found (it changed)."""
    done, pos = 0, 0
    if plan.by == "documents":
        for piece in pieces:
            yield ("train" if piece.doc < plan.first_val_doc else "val"), piece.text
            pos += len(piece.text)
            if progress is not None:
                progress.update(piece.done_bytes - done)
                done = piece.done_bytes
    else:
        _, lo, hi = tail_window(plan.chars, plan.val_fraction)
        held: list[str] = []  # the window text[lo:hi] while it is being read
        cut = plan.cut
        for piece in pieces:
            text, start = piece.text, pos
            pos += len(text)
            if progress is not None:
                progress.update(piece.done_bytes - done)
                done = piece.done_bytes
            if cut is not None:  # known: route directly
                if pos <= cut:
                    yield "train", text
                elif start >= cut:
                    yield "val", text
                else:
                    yield "train", text[: cut - start]
                    yield "val", text[cut - start:]
                continue
            if start < lo:
                yield "train", text[: lo - start]
            if pos > lo:
                held.append(text[max(0, lo - start): hi - start])
            if pos >= hi:  # the window is complete: place the cut, release the held text
                window = "".join(held)
                if len(window) != hi - lo:
                    raise _changed(pos, plan.chars)
                cut = tail_cut(plan.chars, plan.val_fraction, window)
                if cut > lo:
                    yield "train", window[: cut - lo]
                yield "val", window[cut - lo:]
                if pos > hi:
                    yield "val", text[hi - start:]
    if pos != plan.chars:
        raise _changed(pos, plan.chars)


def _changed(now: int, before: int) -> AttnlabError:
    return AttnlabError(f"the source changed while it was being prepared (its first reading had {before:,} "
                        f"characters, the second {now:,} or more); prepare it again once it stops changing")


# --------------------------------------------------------------------------- chunks for BPE


def _safe_cut(text: str, lo: int, hi: int) -> int:
    """The last ``i`` in ``(lo, hi)`` with ``text[i]`` a space or newline between two non-space
    characters, or -1. Byte-level BPE pre-tokenizes with the GPT-2 pattern; no pre-token crosses
    such a point, and none looks across it, so ``text[:i]`` and ``text[i:]`` encode independently."""
    for sep in ("\n", " "):
        i = text.rfind(sep, lo, hi)
        while i > lo:
            if i + 1 < len(text) and not text[i - 1].isspace() and not text[i + 1].isspace():
                return i
            i = text.rfind(sep, lo, i)
    return -1


def bpe_chunks(texts: Iterable[str], target: int, hard_limit: int | None = None) -> Iterator[str]:
    """Re-cut a split's text into chunks of about ``target`` characters at safe points (see
    :func:`_safe_cut`); a text with no safe point for ``hard_limit`` characters is cut there anyway."""
    hard_limit = hard_limit or 64 * target
    parts: list[str] = []
    size = 0
    for text in texts:
        parts.append(text)
        size += len(text)
        if size < target:
            continue
        buf, start = "".join(parts), 0
        while len(buf) - start >= target:
            cut = _safe_cut(buf, start + target // 2, start + target)
            if cut < 0:
                cut = _safe_cut(buf, start + target, len(buf) - 1)
            if cut < 0:
                if len(buf) - start < hard_limit:
                    break
                cut = start + hard_limit
            yield buf[start:cut]
            start = cut
        parts, size = ([buf[start:]], len(buf) - start) if start < len(buf) else ([], 0)
    if size:
        yield "".join(parts)
