"""Reading run folders back: the model, its tokenizer(s), how it was trained, its metrics."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.io import read_json, read_metrics
from attnlab.models.registry import load_model
from attnlab.training.run_folder import CHECKPOINTS_DIR, STATE_JSON


@dataclass
class Run:
    path: Path
    model: Any
    tokenizers: dict[str, Any] = field(default_factory=dict)
    run_json: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer(self) -> Any:
        if "tokenizer" not in self.tokenizers:
            raise AttnlabError(f"{self.path} has no tokenizer.json")
        return self.tokenizers["tokenizer"]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.path)


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Load a run (or model) folder; every ``*tokenizer.json`` in it is loaded by its stem.

    The device is checked first, and every tokenizer against the model's vocabulary
    (:func:`check_vocabularies`).
    """
    from attnlab.data.tokenizers import load_tokenizer
    from attnlab.devices import resolve_device

    path = Path(path)
    device = resolve_device(device)
    if not path.is_dir():
        raise AttnlabError(f"{path} is not a run folder (no such directory); see 'attnlab runs'")
    if not (path / "config.json").is_file():
        raise AttnlabError(f"{path} is not a run folder: it has no config.json (train one with 'attnlab train')")
    model = load_model(path, map_location=device)
    tokenizers = {p.stem: load_tokenizer(p) for p in sorted(path.glob("*tokenizer.json"))}
    check_vocabularies(model, tokenizers, path)
    run_json = read_json(path / "run.json", what="run description") if (path / "run.json").is_file() else {}
    return Run(path=path, model=model, tokenizers=tokenizers, run_json=run_json)


# which config fields hold the vocabulary a tokenizer file feeds (by the file's stem)
VOCABULARY_FIELDS = {"tokenizer": ("vocab_size", "src_vocab_size", "tgt_vocab_size"),
                     "src_tokenizer": ("src_vocab_size",), "tgt_tokenizer": ("tgt_vocab_size",)}


def check_vocabularies(model: Any, tokenizers: dict[str, Any], path: str | Path) -> None:
    """Refuse a tokenizer with more ids than the model's vocabulary: its ids would index past the
    embedding table (a tokenizer.json replaced by another run's, or a tampered config.json)."""
    config = getattr(model, "config", None)
    for stem, tokenizer in tokenizers.items():
        for name in VOCABULARY_FIELDS.get(stem, ()):
            size = getattr(config, name, None)
            if isinstance(size, int) and tokenizer.vocab_size > size:
                raise AttnlabError(
                    f"{Path(path) / (stem + '.json')} has {tokenizer.vocab_size:,} token ids, but the model in "
                    f"{Path(path) / 'config.json'} has {name}={size:,}: they do not belong together (was one of "
                    "the files replaced?)"
                )


def summarize(path: Path) -> dict[str, Any] | None:
    """One line of ``attnlab runs``; None if ``path`` is not a run."""
    try:
        meta = read_json(path / "config.json")
    except AttnlabError:
        return None
    if not isinstance(meta, dict) or meta.get("format") != "attnlab":
        return None
    try:
        rows = read_metrics(path)
    except AttnlabError:
        rows = []
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    steps = [r["step"] for r in rows]
    info = {}
    if (path / "run.json").is_file():
        try:
            info = read_json(path / "run.json")
        except AttnlabError:
            info = {}
    if not isinstance(info, dict):
        info = {}
    args = info.get("args", {})
    if not isinstance(args, dict):
        args = {}
    return {"run": str(path), "kind": info.get("kind", meta.get("model_type")),
            "data": args.get("data") or args.get("task") or "", "step": max(steps, default=0),
            "best_val_loss": min(vals, default=math.nan)}


def is_checkpoint_folder(path: Path) -> bool:
    """A checkpoint inside a run (``RUN/checkpoints/step-N``) or a hidden (temporary) folder: not a run."""
    return path.name.startswith(".") or (
        path.parent.name == CHECKPOINTS_DIR and (path.parent.parent / STATE_JSON).is_file())


def find_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    root = Path(root)
    if not root.is_dir():
        return []
    candidates = [root]
    for folder, subfolders, _ in os.walk(root):  # not into a run's checkpoints
        subfolders[:] = [d for d in subfolders if not is_checkpoint_folder(Path(folder, d))]
        candidates.extend(Path(folder, d) for d in subfolders)
    return [s for p in sorted(candidates) if (s := summarize(p)) is not None]
