"""``attnlab prepare``: tokenize a corpus once, streaming, into memory-mappable token shards.

:func:`prepare` reads the source twice as a stream (:mod:`attnlab.data.sources`), so memory stays
flat however big the corpus is:

1. a first pass counts characters and documents, collects the character set (the char tokenizer's
   vocabulary, in sorted order, as ``make_tokenizer("char", text)`` builds it) and keeps a bounded
   sample of the text (the BPE tokenizer is trained on the training split's part of it: on all of the
   training text when the source has at most ``bpe_sample_chars`` characters, as the in-memory path
   does);
2. a second pass routes the text to the training or the held-out split
   (:mod:`attnlab.data.streaming`), encodes it on every core (:mod:`attnlab.data.encoding`) and
   appends the ids to shards (:mod:`attnlab.data.shards`).

Everything is written into a temporary folder beside ``out`` and renamed into place at the end
(:mod:`attnlab.data.atomic_dir`); a source that changes while it is read is refused. For a text
file or a built-in corpus the shards hold exactly the ids the in-memory path gives
(``split_train_val`` then ``tokenizer.encode`` of each part).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

from attnlab.data.atomic_dir import AtomicFolder
from attnlab.data.corpora import check_val_fraction
from attnlab.data.shards import (
    DEFAULT_SHARD_TOKENS,
    FORMAT,
    FORMAT_VERSION,
    SPLITS,
    TOKENIZER_FILE,
    ShardWriter,
    is_prepared,
    read_meta,
    token_dtype,
    write_meta,
)
from attnlab.data.source_for import open_source
from attnlab.data.sources import Source
from attnlab.errors import AttnlabError

TOKENIZER_KINDS = ("char", "bpe")
DEFAULT_BPE_SAMPLE_CHARS = 20_000_000
CHAR_CHUNK_CHARS = 1 << 20  # characters per char-encoding task
BPE_CHUNK_CHARS = 1 << 17  # characters per chunk handed to the BPE batch encoder


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI)
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                disable=None if enabled else True, dynamic_ncols=True, leave=False, smoothing=0.1)


def _replaceable(folder: Path) -> bool:
    """``--overwrite`` replaces a prepared folder or an empty one, never anything else."""
    return folder.is_dir() and not folder.is_symlink() and (is_prepared(folder) or not any(folder.iterdir()))


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that exists, unless ``overwrite`` and it is a prepared (or empty) folder."""
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise AttnlabError(f"{out} already exists; choose another --out, or --overwrite to replace it")
    if not _replaceable(out):
        raise AttnlabError(f"{out} exists and is not a prepared folder; --overwrite only replaces a folder "
                           "written by 'attnlab prepare' (or an empty one): choose another --out")


def _settings(kind: str, vocab_size: int | None, tokenizer: Any) -> tuple[str, int | None]:
    if tokenizer is not None:
        if kind is not None and kind != tokenizer.kind:
            raise AttnlabError(f"the tokenizer given is a {tokenizer.kind} tokenizer, not {kind}")
        kind = tokenizer.kind
    kind = kind or "char"
    if kind not in TOKENIZER_KINDS:
        raise AttnlabError(f"unknown tokenizer kind {kind!r} for prepare; choose one of: {', '.join(TOKENIZER_KINDS)}")
    if kind == "bpe" and tokenizer is None:
        from attnlab.data.tokenizers import DEFAULT_BPE_VOCAB, BPETokenizer

        vocab_size = DEFAULT_BPE_VOCAB if vocab_size is None else vocab_size
        minimum = BPETokenizer.min_vocab_size()
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < minimum:
            raise AttnlabError(f"the bpe vocabulary size must be an integer of at least {minimum}, got "
                               f"{vocab_size!r}; try {DEFAULT_BPE_VOCAB}")
    elif kind == "char":
        vocab_size = None
    return kind, vocab_size


def _build_tokenizer(kind: str, vocab_size: int | None, scanned: Any, plan: Any, progress: bool) -> tuple[Any, int]:
    from attnlab.data.streaming import training_sample
    from attnlab.data.tokenizers import BPETokenizer, CharTokenizer

    if kind == "char":
        return CharTokenizer(scanned.characters()), scanned.chars
    sample = training_sample(scanned, plan)
    if progress:
        print(f"attnlab: training the bpe tokenizer ({vocab_size} ids) on {len(sample):,} characters"
              + ("" if scanned.all_sampled else " sampled from the training split"), file=sys.stderr)
    return BPETokenizer.train(sample, vocab_size), len(sample)


def _encode_splits(source: Source, plan: Any, tokenizer: Any, dtype: Any, folder: Path, shard_tokens: int,
                   workers: int, progress: bool) -> tuple[dict[str, list], dict[str, int]]:
    """Pass 2: route, encode and write; returns the shard lists and characters per split."""
    from attnlab.data.encoding import BPEEncoder, CharEncoder, batched, coalesce, ordered_map
    from attnlab.data.streaming import bpe_chunks, split_pieces

    writers = {split: ShardWriter(folder, split, dtype, shard_tokens) for split in SPLITS}
    chars = dict.fromkeys(SPLITS, 0)

    def counted(split: str, group: Any) -> Any:
        for _, text in group:
            chars[split] += len(text)
            yield text

    bar = _progress(source.total_bytes, "tokenizing", progress)
    try:
        order = []
        for split, group in itertools.groupby(split_pieces(source.pieces(), plan, bar), key=lambda st: st[0]):
            order.append(split)
            texts = counted(split, group)
            if tokenizer.kind == "char":
                results = ordered_map(CharEncoder(tokenizer, dtype), coalesce(texts, CHAR_CHUNK_CHARS), workers)
            else:
                batches = batched(bpe_chunks(texts, BPE_CHUNK_CHARS), max(2, 2 * workers))
                results = ordered_map(BPEEncoder(tokenizer, dtype), batches, min(2, workers), in_flight=2)
            for ids in results:
                writers[split].write(ids)
        if order != list(SPLITS):  # pragma: no cover - split_pieces yields train, then val
            raise AssertionError(f"splits came in the order {order}")
    finally:
        bar.close()
        shards = {split: writer.close() for split, writer in writers.items()}
    return shards, chars


def prepare(
    source: str | Path | Source,
    out: str | Path,
    tokenizer_kind: str | None = "char",
    vocab_size: int | None = None,
    val_fraction: float = 0.1,
    *,
    text_column: str = "text",
    tokenizer: Any = None,
    overwrite: bool = False,
    progress: bool = True,
    bpe_sample_chars: int = DEFAULT_BPE_SAMPLE_CHARS,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    workers: int | None = None,
    wait: bool = False,
    reuse=None,
) -> dict[str, Any]:
    """Tokenize ``source`` into the prepared folder ``out``; return its ``meta.json`` contents.

    ``tokenizer_kind``: ``"char"`` or ``"bpe"`` (``vocab_size`` ids, default 1024), trained here;
    or pass a trained ``tokenizer`` to encode with it instead (a char tokenizer then refuses text
    with characters it lacks). ``val_fraction``: the share held out, by documents for folders and
    tables with two or more documents, else the text's tail. ``overwrite`` replaces an existing
    prepared folder. ``wait``: wait for another process preparing the same ``out`` instead of
    failing; ``reuse(out) -> bool``: checked under the lock, an existing ``out`` it accepts is
    returned as it is, one it refuses is replaced (the cache uses both).
    """
    from attnlab.data.encoding import cpu_count
    from attnlab.data.streaming import plan_split, scan

    started = time.perf_counter()
    kind, vocab_size = _settings(tokenizer_kind, vocab_size, tokenizer)
    val_fraction = check_val_fraction(val_fraction)
    if isinstance(bpe_sample_chars, bool) or not isinstance(bpe_sample_chars, int) or bpe_sample_chars < 1:
        raise AttnlabError(f"the bpe sample size must be a positive number of characters, got {bpe_sample_chars!r}")
    if not isinstance(source, Source) and is_prepared(source):
        raise AttnlabError(f"{source} is a prepared folder already (it has meta.json): train on it directly, "
                           "or give the corpus it came from")
    source = source if isinstance(source, Source) else open_source(source, text_column)
    out = Path(out).expanduser().absolute()
    if source.path is not None and out == source.path:
        raise AttnlabError(f"--out {out} is the source itself; choose another folder")
    if reuse is None:
        check_out(out, overwrite)
    workers = workers or cpu_count()
    identity = source.identity()

    if reuse is not None:  # a cache entry: one that is there but not reusable (broken) is replaced
        replace = lambda folder: True  # noqa: E731
    else:
        replace = _replaceable if overwrite else None
    folder = AtomicFolder(out, replace=replace, wait=wait, quiet=not progress, exists_ok=reuse)
    with folder as tmp:
        if tmp is None:
            return read_meta(out)
        bar = _progress(source.total_bytes, "reading", progress)
        with bar:
            scanned = scan(source.pieces(), bpe_sample_chars if kind == "bpe" and tokenizer is None else 0,
                           charset=kind == "char" and tokenizer is None, progress=bar)
        plan = plan_split(scanned, val_fraction, source.has_documents)
        read_done = time.perf_counter()
        sample_chars = None
        if tokenizer is None:
            tokenizer, sample_chars = _build_tokenizer(kind, vocab_size, scanned, plan, progress)
        trained = time.perf_counter()
        dtype = token_dtype(tokenizer.vocab_size)
        shards, chars = _encode_splits(source, plan, tokenizer, dtype, tmp, shard_tokens, workers, progress)
        if source.identity() != identity:
            raise AttnlabError(f"{source.path or source.spec} changed while it was being prepared; "
                               "prepare it again once it stops changing")
        tokenizer.save(tmp / TOKENIZER_FILE)
        done = time.perf_counter()
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tokenizer": {"kind": kind, "vocab_size": tokenizer.vocab_size, "requested_vocab_size": vocab_size,
                          "trained_on_characters": sample_chars, "given": sample_chars is None},
            "dtype": dtype.name,
            "val_fraction": val_fraction,
            "split": {"by": plan.by, "documents": scanned.documents,
                      "first_val_document": plan.first_val_doc if plan.by == "documents" else None},
            "characters": chars,
            "tokens": {split: sum(s["tokens"] for s in shards[split]) for split in SPLITS},
            "shards": shards,
            "source": identity,
            "settings": {"text_column": text_column if source.kind in ("jsonl", "parquet", "arrow") else None,
                         "bpe_sample_chars": bpe_sample_chars if kind == "bpe" else None,
                         "shard_tokens": shard_tokens},
            "seconds": {"read": round(read_done - started, 3), "tokenizer": round(trained - read_done, 3),
                        "tokenize": round(done - trained, 3), "total": round(done - started, 3)},
        }
        write_meta(tmp, meta)
    return meta
