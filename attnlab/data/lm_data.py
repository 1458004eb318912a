"""Language-model data for training: a prepared folder, or any corpus prepared on the fly into a cache.

:func:`load_lm_data` is what a language-model recipe calls with ``--data``; it returns the tokenizer
and the two token streams as memory-mapped :class:`~attnlab.data.shards.TokenShards`, which
:class:`~attnlab.data.batching.LanguageModelObjective` draws batches from without reading a corpus
into memory::

    data = load_lm_data(args.data, args.tokenizer, args.vocab_size, args.val_fraction)
    objective = LanguageModelObjective(data.train, data.val, context_length, seed=seed)

- ``data`` a prepared folder (``attnlab prepare ... --out DIR``): its shards are mapped as they
  are. Settings given must match how it was prepared (None: take the folder's), and so must a
  ``tokenizer`` given (a resumed run's); a source that changed since is refused.
- anything else (a built-in corpus name, a text file, a folder of ``.txt`` files, a
  ``.jsonl``/``.parquet``/``.arrow`` file): prepared once into the cache folder
  (``$ATTNLAB_CACHE``, else ``~/.cache/attnlab``), keyed by the source's identity (path, size,
  modification time, sampled hash) and the settings, so the next run maps the cached shards
  without tokenizing again. A changed source gets a new entry; the stale one is removed.

For a text file or a built-in corpus the tokens are exactly those of the in-memory path
(``split_train_val`` + ``make_tokenizer`` + ``encode``), so batches are too.

``LanguageModelRecipe.build`` (:mod:`attnlab.training.recipes`) is to call this in place of
``load_corpus`` + ``split_train_val`` + ``encode``; that switch is a change to the recipe of its
own. Under torchrun every rank may call it: ranks wait for the one that prepares a cache entry
(a file lock), then all map the same files (pass ``progress`` for rank 0 only). Objectives that
need tensors (the recurrent LMs' truncated BPTT) can take ``data.train.to_tensor()`` on small data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.data.corpora import check_val_fraction
from attnlab.data.shards import FORMAT_VERSION, TokenShards, is_prepared, open_prepared
from attnlab.errors import AttnlabError

DEFAULT_VAL_FRACTION = 0.1


@dataclass
class LMData:
    """A tokenizer and the train / validation token streams; ``info`` describes them for ``run.json``
    (data, data_fingerprint, tokenizer, vocab_size, val_fraction, train_tokens, val_tokens, prepared,
    cache: "hit" / "miss" / None)."""

    tokenizer: Any
    train: TokenShards
    val: TokenShards
    info: dict[str, Any] = field(default_factory=dict)

    def head_text(self, tokens: int = 2000) -> str:
        """The start of the training text (decoded from its first ``tokens`` ids): for a sample prompt."""
        return self.tokenizer.decode(self.train[: min(tokens, len(self.train))].tolist())


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$ATTNLAB_CACHE``, else ``~/.cache/attnlab``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("ATTNLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "attnlab"


def _digest(value: Any, size: int = 12) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True, default=str).encode(), digest_size=size).hexdigest()


def _tokenizer_digest(tokenizer: Any) -> str:
    return _digest(tokenizer.to_dict(), 16)


def _same_tokenizer(a: Any, b: Any) -> bool:
    return a.kind == b.kind and _tokenizer_digest(a) == _tokenizer_digest(b)


def _info(data: Any, prepared: Any, cache: str | None) -> dict[str, Any]:
    meta = prepared.meta
    return {
        "data": str(data), "data_fingerprint": meta["source"].get("fingerprint"),
        "tokenizer": meta["tokenizer"]["kind"], "vocab_size": meta["tokenizer"].get("requested_vocab_size"),
        "val_fraction": meta["val_fraction"], "train_tokens": len(prepared.train), "val_tokens": len(prepared.val),
        "split_by": meta["split"]["by"], "dtype": meta["dtype"], "prepared": str(prepared.folder), "cache": cache,
    }


def _check_settings(folder: Path, meta: dict[str, Any], kind: str | None, vocab_size: int | None,
                    val_fraction: float | None, tokenizer: Any, prepared_tokenizer: Any) -> None:
    made = meta["tokenizer"]
    if kind is not None and kind != made["kind"]:
        raise AttnlabError(f"{folder} was prepared with the {made['kind']} tokenizer, not {kind}; drop "
                           f"--tokenizer or prepare it again with --tokenizer {kind}")
    if vocab_size is not None and made["kind"] == "bpe" and vocab_size != made.get("requested_vocab_size"):
        raise AttnlabError(f"{folder} was prepared with --vocab-size {made.get('requested_vocab_size')}, not "
                           f"{vocab_size}; drop --vocab-size or prepare it again")
    if val_fraction is not None and abs(val_fraction - meta["val_fraction"]) > 1e-12:
        raise AttnlabError(f"{folder} was prepared with --val-fraction {meta['val_fraction']}, not {val_fraction}; "
                           "drop --val-fraction or prepare it again")
    if tokenizer is not None and not _same_tokenizer(tokenizer, prepared_tokenizer):
        raise AttnlabError(f"the tokenizer of this run differs from the one {folder} was prepared with "
                           f"({folder / 'tokenizer.json'}); train with data prepared by the same tokenizer")


def _entry_ok(folder: Path, tokenizer: Any = None) -> bool:
    try:
        prepared = open_prepared(folder, verify_source=False)
    except AttnlabError:
        return False
    return tokenizer is None or _same_tokenizer(tokenizer, prepared.tokenizer)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "corpus"


def load_lm_data(
    data: str | Path,
    tokenizer_kind: str | None = None,
    vocab_size: int | None = None,
    val_fraction: float | None = None,
    *,
    tokenizer: Any = None,
    cache_dir: str | Path | None = None,
    text_column: str = "text",
    progress: bool = True,
    **prepare_options: Any,
) -> LMData:
    """Tokenizer + memory-mapped train/val tokens for ``data`` (see the module docstring).

    ``tokenizer_kind`` ("char"/"bpe"), ``vocab_size`` and ``val_fraction``: None means "the default"
    (char, 1024, 0.1) for a source, and "as prepared" for a prepared folder. ``tokenizer``: encode
    with this one (a resumed run's) instead of training one. ``prepare_options`` go to
    :func:`attnlab.data.prepare.prepare` (e.g. ``bpe_sample_chars``, ``shard_tokens``, ``workers``).
    Raises :class:`AttnlabError` for anything wrong with the data or a mismatch of settings.
    """
    if val_fraction is not None:
        val_fraction = check_val_fraction(val_fraction)
    if is_prepared(data):
        folder = Path(data).expanduser()
        prepared = open_prepared(folder)
        _check_settings(folder, prepared.meta, tokenizer_kind, vocab_size, val_fraction, tokenizer,
                        prepared.tokenizer)
        return LMData(prepared.tokenizer, prepared.train, prepared.val, _info(data, prepared, None))

    from attnlab.data.prepare import _settings, prepare
    from attnlab.data.source_for import open_source

    kind, vocab = _settings(tokenizer_kind, vocab_size, tokenizer)
    fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    source = open_source(data, text_column)
    identity = source.identity()
    where = identity.get("path") or identity["spec"]
    settings = {"format": FORMAT_VERSION, "kind": kind, "vocab_size": vocab, "val_fraction": fraction,
                "text_column": identity.get("text_column"),
                **{k: prepare_options[k] for k in sorted(prepare_options) if k in ("bpe_sample_chars",)}}
    family = f"{_slug(source.name)}-{_digest([where, settings], 4)}"  # this source with these settings
    key = _digest([{k: v for k, v in identity.items() if k != "spec" or not identity.get("path")}, settings])
    root = cache_root(cache_dir) / "prepared"
    entry = root / f"{family}-{key}"
    if tokenizer is not None and not (entry.exists() and _entry_ok(entry, tokenizer)):
        entry = root / f"{family}-{key}-{_tokenizer_digest(tokenizer)[:8]}"  # a run's own tokenizer
    cache = "hit" if entry.exists() and _entry_ok(entry, tokenizer) else "miss"
    if cache == "miss":
        prepare(source, entry, kind, vocab, fraction, tokenizer=tokenizer, progress=progress, wait=True,
                reuse=lambda folder: _entry_ok(folder, tokenizer), overwrite=True, **prepare_options)
        _remove_stale(root, family, key)
    prepared = open_prepared(entry, verify_source=False)
    _check_settings(entry, prepared.meta, None, None, None, tokenizer, prepared.tokenizer)
    return LMData(prepared.tokenizer, prepared.train, prepared.val, _info(data, prepared, cache))


def _remove_stale(root: Path, family: str, key: str) -> None:
    """Remove the entries of the same source and settings made from an older version of the source
    (another key); a process still reading one keeps its mapped pages until it closes them."""
    for old in root.glob(f"{family}-*"):
        if old.is_dir() and old.name[len(family) + 1:].split("-")[0] != key:
            shutil.rmtree(old, ignore_errors=True)
