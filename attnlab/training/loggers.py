"""Where a run's numbers go besides ``metrics.jsonl`` (which stays the source): ``--log csv,tensorboard,...``.

- ``csv``: ``metrics.csv`` in the run folder, one row per logged step (step, loss, lr, tokens/s,
  time, val_loss), for spreadsheets;
- ``tensorboard``: event files in ``RUN/tensorboard`` (``tensorboard --logdir runs``), if the
  ``tensorboard`` package is installed;
- ``wandb``: Weights & Biases, if installed; offline (``WANDB_MODE=offline``) unless you set the mode,
  so nothing leaves the machine by default;
- ``samples``: a short sample at every evaluation, appended to ``RUN/samples.jsonl``; sampling uses
  its own generator, so the training run is the same with or without it (not under FSDP, whose
  sharded forward pass needs every rank).

Every logger writes only on the main rank.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.training.callbacks import Callback

LOGGERS = ("csv", "tensorboard", "wandb", "samples")
CSV_COLUMNS = ("step", "loss", "val_loss", "lr", "tokens_per_sec", "time")


def parse_log(text: str | None) -> list[str]:
    """``"csv,samples"`` -> ["csv", "samples"]; "none" or empty -> []; unknown names are an error."""
    names = [n.strip() for n in (text or "").split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise AttnlabError(f"--log: unknown logger(s) {', '.join(unknown)}; choose from {', '.join(LOGGERS)}")
    return names


class CSVLogger(Callback):
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.csv"

    def _write(self, trainer: Any, row: dict[str, Any]) -> None:
        if not trainer.dist.is_main:
            return
        new = not self.path.is_file()
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def on_step(self, trainer: Any, row: dict[str, Any]) -> None:
        self._write(trainer, row)

    def on_eval(self, trainer: Any, row: dict[str, Any]) -> None:
        self._write(trainer, row)


class TensorBoardLogger(Callback):
    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise AttnlabError("--log tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.writer_class, self.folder, self.writer = SummaryWriter, run_dir / "tensorboard", None

    def _scalars(self, trainer: Any, row: dict[str, Any], names: tuple[str, ...]) -> None:
        if not trainer.dist.is_main:
            return
        if self.writer is None:
            self.writer = self.writer_class(log_dir=str(self.folder))
        for name in names:
            if name in row:
                self.writer.add_scalar(name, row[name], row["step"])

    def on_step(self, trainer: Any, row: dict[str, Any]) -> None:
        self._scalars(trainer, row, ("loss", "lr", "tokens_per_sec"))

    def on_eval(self, trainer: Any, row: dict[str, Any]) -> None:
        self._scalars(trainer, row, ("val_loss",))
        if self.writer is not None:
            self.writer.flush()

    def on_end(self, trainer: Any, result: Any) -> None:
        if self.writer is not None:
            self.writer.close()


class WandbLogger(Callback):
    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise AttnlabError("--log wandb needs the wandb package: pip install wandb") from None
        os.environ.setdefault("WANDB_MODE", "offline")
        self.wandb, self.run_dir, self.config, self.run = wandb, run_dir, config, None

    def _log(self, trainer: Any, row: dict[str, Any]) -> None:
        if not trainer.dist.is_main:
            return
        if self.run is None:
            self.run = self.wandb.init(project="attnlab", name=self.run_dir.name, dir=str(self.run_dir),
                                       config=self.config)
        self.run.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    on_step = _log
    on_eval = _log

    def on_end(self, trainer: Any, result: Any) -> None:
        if self.run is not None:
            self.run.finish()


class SampleLogger(Callback):
    """At every evaluation, ``sample(model)`` is appended to ``samples.jsonl`` as {"step", "text"}."""

    def __init__(self, run_dir: Path, sample: Callable[[Any], str]) -> None:
        self.path, self.sample = run_dir / "samples.jsonl", sample

    def on_eval(self, trainer: Any, row: dict[str, Any]) -> None:
        if not trainer.dist.is_main or (trainer.config.fsdp and trainer.dist.world_size > 1):
            return  # under FSDP a forward pass is a collective of every rank: no sampling on one
        model = trainer.raw_model
        was_training = model.training
        try:
            text = self.sample(model.eval())
        finally:
            model.train(was_training)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": row["step"], "text": text}, ensure_ascii=False) + "\n")


def make_loggers(names: list[str], run_dir: Path, *, sample: Callable[[Any], str] | None = None,
                 config: dict[str, Any] | None = None) -> list[Callback]:
    """The callbacks for ``--log`` (a kind without a sample just skips ``samples``)."""
    out: list[Callback] = []
    for name in names:
        if name == "csv":
            out.append(CSVLogger(run_dir))
        elif name == "tensorboard":
            out.append(TensorBoardLogger(run_dir))
        elif name == "wandb":
            out.append(WandbLogger(run_dir, config or {}))
        elif name == "samples" and sample is not None:
            out.append(SampleLogger(run_dir, sample))
    return out
