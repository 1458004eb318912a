"""Reading run folders back: the model, its tokenizer(s), how it was trained, its metrics."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.checkpoint import read_json
from attnlab.errors import AttnlabError
from attnlab.models.registry import load_model


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


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    file = Path(path) / "metrics.jsonl"
    if file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Load a run (or model) folder; every ``*tokenizer.json`` in it is loaded by its stem."""
    from attnlab.data.tokenizers import load_tokenizer

    path = Path(path)
    if not path.is_dir():
        raise AttnlabError(f"{path} is not a run folder (no such directory); see 'attnlab runs'")
    if not (path / "config.json").is_file():
        raise AttnlabError(f"{path} is not a run folder: it has no config.json (train one with 'attnlab train')")
    model = load_model(path, map_location=device)
    tokenizers = {p.stem: load_tokenizer(p) for p in sorted(path.glob("*tokenizer.json"))}
    run_json = read_json(path / "run.json", what="run description") if (path / "run.json").is_file() else {}
    return Run(path=path, model=model, tokenizers=tokenizers, run_json=run_json)


def summarize(path: Path) -> dict[str, Any] | None:
    """One line of ``attnlab runs``; None if ``path`` is not a run."""
    try:
        meta = read_json(path / "config.json")
    except AttnlabError:
        return None
    if not isinstance(meta, dict) or meta.get("format") != "attnlab":
        return None
    rows = read_metrics(path)
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    steps = [r["step"] for r in rows if "step" in r]
    info = {}
    if (path / "run.json").is_file():
        try:
            info = read_json(path / "run.json")
        except AttnlabError:
            info = {}
    args = info.get("args", {})
    return {"run": str(path), "kind": info.get("kind", meta.get("model_type")),
            "data": args.get("data") or args.get("task") or "", "step": max(steps, default=0),
            "best_val_loss": min(vals, default=math.nan)}


def find_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    root = Path(root)
    if not root.is_dir():
        return []
    candidates = [root] + sorted(p for p in root.rglob("*") if p.is_dir())
    return [s for p in candidates if (s := summarize(p)) is not None]
