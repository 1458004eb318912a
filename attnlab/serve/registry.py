"""The runs a server offers, by name, loaded on first use, with one lock per loaded model.

The folders given to ``attnlab serve`` are scanned afresh on every listing (a run trained while the
server is up appears). A run is loaded when first asked for and kept; before each use its weights
file is looked at again, so a run folder deleted or rewritten while the server runs is reloaded or
refused with a clear error, never used half-read. A model is used by one request at a time (its
:attr:`Entry.lock`): concurrent requests queue, and no two generations share a cache.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.runs import find_runs

ELIZA = "eliza"
LANGUAGE_MODELS = ("gpt", "rnn_lm", "lstm_lm", "gru_lm")
TRANSLATION_MODELS = ("seq2seq", "transformer")
WEIGHTS_FILE = "model.safetensors"


class RunNotFound(AttnlabError):
    """No run of that name (or its folder is gone)."""


class RunUnreadable(AttnlabError):
    """The run's folder is there but cannot be loaded (damaged or half-written)."""


def count_parameters(folder: Path) -> int | None:
    """Parameters of a run, read from the safetensors header only (no weights loaded); None if unreadable."""
    try:
        with open(folder / WEIGHTS_FILE, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100_000_000:
                return None
            header = json.loads(f.read(size))
        return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None


def model_type_of(folder: Path) -> str:
    """The ``model_type`` of a run's config.json ("" when unreadable)."""
    try:
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return str(meta.get("model_type", "")) if isinstance(meta, dict) else ""
    except (OSError, ValueError):
        return ""


def capabilities(model_type: str) -> list[str]:
    """What the studio can do with a model type: generate, translate, attention."""
    caps = []
    if model_type in LANGUAGE_MODELS or model_type == ELIZA:
        caps.append("chat")
    if model_type in LANGUAGE_MODELS:
        caps.append("generate")
    if model_type in TRANSLATION_MODELS:
        caps.append("translate")
    if model_type in ("gpt", "transformer", "seq2seq", "encoder"):
        caps.append("attention")
    return caps


def _signature(folder: Path) -> tuple[int, int] | None:
    try:
        stat = (folder / WEIGHTS_FILE).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@dataclass
class Entry:
    """A loaded run: the :class:`attnlab.api.RunHandle`, the file state it was read from, its lock."""

    name: str
    path: Path
    run: Any
    signature: tuple[int, int] | None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Registry:
    """Run folders by name. ``sources``: run folders and/or folders of runs."""

    def __init__(self, sources: list[str | Path], device: str = "cpu") -> None:
        self.sources = [Path(s) for s in sources]
        self.device = device
        self._loaded: dict[str, Entry] = {}
        self._guard = threading.Lock()  # guards _loaded, never held while generating

    def scan(self) -> dict[str, dict[str, Any]]:
        """Every run under the sources, by name: the path relative to its source folder (a run given
        directly is named by its folder), with its ``attnlab runs`` summary."""
        found: dict[str, dict[str, Any]] = {}
        for source in self.sources:
            for summary in find_runs(source):
                path = Path(summary["run"])
                rel = path.relative_to(source).as_posix() if path != source else ""
                name = rel or source.resolve().name or "run"
                base, n = name, 2
                while name in found or name == ELIZA:
                    name, n = f"{base}-{n}", n + 1
                found[name] = {**summary, "name": name, "path": path}
        return found

    def path_of(self, name: str) -> Path:
        runs = self.scan()
        if name not in runs:
            known = ", ".join(sorted(runs)[:20]) or "none"
            raise RunNotFound(f"no run named {name!r} (runs: {known}; see GET /v1/models)")
        return runs[name]["path"]

    def get(self, name: str) -> Entry:
        """The loaded run ``name``, (re)loaded if its weights changed on disk since."""
        from attnlab.api import load_run

        with self._guard:
            entry = self._loaded.get(name)
        if entry is not None:
            if not entry.path.is_dir():
                self._forget(name)
                raise RunNotFound(f"the folder of run {name!r} ({entry.path}) is gone")
            if _signature(entry.path) == entry.signature:
                return entry
        path = entry.path if entry is not None else self.path_of(name)
        signature = _signature(path)
        try:
            run = load_run(path, device=self.device)
        except AttnlabError as err:
            self._forget(name)
            if not path.is_dir():
                raise RunNotFound(f"the folder of run {name!r} ({path}) is gone") from None
            raise RunUnreadable(f"run {name!r} cannot be loaded: {err}") from None
        except Exception as err:  # a damaged file the loader did not foresee
            self._forget(name)
            raise RunUnreadable(f"run {name!r} cannot be loaded ({type(err).__name__}: {err})") from None
        with self._guard:
            old = self._loaded.get(name)
            fresh = Entry(name, path, run, signature, old.lock if old is not None else threading.Lock())
            self._loaded[name] = fresh
        return fresh

    def _forget(self, name: str) -> None:
        with self._guard:
            self._loaded.pop(name, None)
