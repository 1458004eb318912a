"""One trainer for every learned model in attnlab.

A model family hands the trainer an :class:`Objective` (how to draw a batch, how to score it) and the
trainer does the rest, the same way for a GPT, an LSTM or a translation model:

- AdamW (weight decay on matrices only), linear warm-up then cosine decay to a floor below the peak
  (or the Transformer paper's inverse square root), gradient clipping, gradient accumulation;
- periodic evaluation on the held-out validation split, a progress bar (loss, tokens/s, ETA),
  ``metrics.jsonl`` and ``loss.png``;
- checkpoints every N steps, each published whole or not at all (:mod:`attnlab.training.state`:
  ``checkpoints/step-N/`` named by ``trainer_state.json``; the run folder's ``config.json`` and
  ``model.safetensors`` follow the latest), and an exact resume: the RNG, optimizer and objective
  states are restored, ``metrics.jsonl`` is cut back to the checkpoint, and every batch is a pure
  function of ``(seed, split, step)``, so a resumed run repeats an uninterrupted one bit for bit on
  the CPU;
- data parallelism under ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on CUDA): each
  step's global batch is cut into one slice per rank and per micro-step, rank 0 logs and saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from attnlab.errors import AttnlabError, require_positive_fields
from attnlab.io import METRICS_FILE, read_metrics, write_json_atomic, write_text_atomic
from attnlab.training import distributed as dist_utils
from attnlab.training import mfu as mfu_utils
from attnlab.training.callbacks import dispatch
from attnlab.training.optim import build_optimizer
from attnlab.training.run_folder import STATE_JSON
from attnlab.training.schedule import SCHEDULES, learning_rate
from attnlab.training.state import (
    cut_metrics,
    flatten_optimizer,
    publish_model_files,
    read_checkpoint,
    remove_leftovers,
    restore_rng,
    rng_tensors,
    run_is_resumable,
    unflatten_optimizer,
    write_checkpoint,
    write_failed,
)


@dataclass
class TrainConfig:
    """How to train (the model's own shape lives in its config)."""

    steps: int = 2000
    batch_size: int = 12  # global: sequences per optimizer step, over all micro-steps and ranks
    grad_accum: int = 1  # micro-steps per optimizer step
    lr: float = 1e-3
    min_lr: float | None = None  # cosine floor; None = lr / 10
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | inverse_sqrt | constant
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 = no clipping
    eval_every: int = 200
    eval_iters: int = 20
    ckpt_every: int = 500
    log_every: int = 1
    seed: int = 1337
    device: str = "cpu"
    dtype: str = "float32"  # float32 | bfloat16 (autocast; for GPUs)
    compile: bool = False
    optimizer: str = "adamw"  # adamw | muon
    muon_lr: float = 0.02  # Muon's own learning rate for hidden matrices (--optimizer muon)
    max_time: float = 0.0  # seconds of training after which to stop early (0 = no limit)
    fsdp: bool = False

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "eval_every", "eval_iters", "ckpt_every", "log_every")
        require_positive_fields(self, positive, owner="")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise AttnlabError(f"lr must be a positive number, got {self.lr}")
        if self.min_lr is None:
            self.min_lr = self.lr / 10
        if not 0 <= self.min_lr <= self.lr:
            raise AttnlabError(
                f"min_lr ({self.min_lr}) must be between 0 and the peak lr ({self.lr}): the cosine schedule "
                "decays from the peak to this floor"
            )
        if self.warmup_steps < 0:
            raise AttnlabError("warmup_steps must be >= 0")
        if self.schedule not in SCHEDULES:
            raise AttnlabError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise AttnlabError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        if self.batch_size % self.grad_accum:
            raise AttnlabError(
                f"batch_size ({self.batch_size}) must be divisible by grad_accum ({self.grad_accum})"
            )
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise AttnlabError("grad_clip and weight_decay must be >= 0")


class Objective(Protocol):
    """What a model family gives the trainer."""

    def batch(self, split: str, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """Batch ``step`` of ``split`` (deterministic); every tensor has the batch on dim 0."""

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss over the batch's targets."""

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        """Tokens processed in the batch (for tokens/s)."""


@dataclass
class TrainResult:
    step: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    elapsed: float
    tokens: int
    tokens_per_sec: float
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


Callback = Any  # an attnlab.training.callbacks.Callback, or f(trainer, row) called at every evaluation


def slice_batch(batch: dict[str, torch.Tensor], index: int, parts: int) -> dict[str, torch.Tensor]:
    """Part ``index`` of ``parts`` equal slices along the batch dimension."""
    out = {}
    for key, value in batch.items():
        n = value.shape[0]
        if n % parts:
            raise AttnlabError(f"batch of {n} cannot be split into {parts} equal parts (ranks x micro-steps)")
        size = n // parts
        out[key] = value[index * size : (index + 1) * size]
    return out


def move(batch: dict[str, torch.Tensor], device: torch.device, pin: bool = False) -> dict[str, torch.Tensor]:
    if device.type == "cuda":
        return {k: (v.pin_memory() if pin else v).to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


class Trainer:
    """Train ``model`` on ``objective``; see the module docstring for what it does."""

    def __init__(self, model: nn.Module, objective: Objective, config: TrainConfig, *,
                 run_dir: str | Path | None = None, files: dict[str, Callable[[Path], None]] | None = None,
                 run_info: dict[str, Any] | None = None, callbacks: list[Callback] | None = None,
                 progress: bool = True, description: str = "train", tokenizer: Any = None) -> None:
        """``files`` ({name: write(path)}) are written once into the run folder; ``tokenizer`` (anything
        with ``save(path)``) is saved as ``tokenizer.json``, so ``attnlab generate`` can read the run."""
        self.config = config
        self.objective = objective
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.files = dict(files or {})
        if tokenizer is not None:
            self.files.setdefault("tokenizer.json", tokenizer.save)
        self.run_info = run_info
        self.callbacks = callbacks or []
        self.description = description
        self.dist = dist_utils.setup(config.device)
        dist_utils.check_batch_split(config.batch_size, config.grad_accum, self.dist)
        self.device = self.dist.device
        self.show_progress = progress and self.dist.is_main
        self.raw_model = model.to(self.device)
        self.model = dist_utils.wrap(self.raw_model, self.dist, fsdp=config.fsdp)
        if config.compile:
            self.model = torch.compile(self.model)
        self.optimizer = build_optimizer(self.raw_model, config)
        self.step = 0  # optimizer steps done
        self.tokens = 0
        self.elapsed = 0.0
        self.best_val = math.inf
        self.last_val = math.nan
        self.history: list[dict[str, Any]] = []
        self.saved_step: int | None = None  # the step of the run folder's published checkpoint
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if config.dtype == "bfloat16" else contextlib.nullcontext())
        torch.manual_seed(config.seed + self.dist.rank)
        # MFU on GPUs, against the published peak (attnlab.training.mfu); None elsewhere
        peak = mfu_utils.gpu_peak_flops(self.device, config.dtype)
        context = getattr(objective, "context_length", None)
        per_token = mfu_utils.model_flops_per_token(self.raw_model, context)
        self.flops_per_token_and_peak = (per_token, peak) if peak and per_token else None

    # ---- resume --------------------------------------------------------------------------------
    def resume(self) -> None:
        """Load the published checkpoint in ``run_dir``: weights, optimizer, RNG, step, objective state.

        What a killed save left is removed first, ``metrics.jsonl`` is cut back to the checkpoint and
        the run folder's ``config.json`` / ``model.safetensors`` are made the checkpoint's (rank 0).
        """
        if self.run_dir is None or not run_is_resumable(self.run_dir):
            raise AttnlabError(f"nothing to resume in {self.run_dir}: no {STATE_JSON} naming a checkpoint there")
        if self.dist.is_main:
            remove_leftovers(self.run_dir)
        checkpoint = read_checkpoint(self.run_dir)
        meta, tensors = checkpoint.meta, checkpoint.tensors
        try:
            dist_utils.load_full_state(self.model, self.raw_model, checkpoint.weights, self.optimizer,
                                       unflatten_optimizer(tensors, meta["optimizer"]))
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise AttnlabError(f"the checkpoint in {checkpoint.folder} does not match this model/optimizer: "
                               f"{err}") from None
        self.step = checkpoint.step
        self.tokens = int(meta.get("tokens", 0))
        self.elapsed = float(meta.get("elapsed", 0.0))
        self.best_val = float(meta.get("best_val_loss", math.inf))
        self.last_val = float(meta.get("val_loss", math.nan))
        restore_rng(tensors)
        if hasattr(self.objective, "load_state_tensors"):
            self.objective.load_state_tensors({k[len("objective."):]: v for k, v in tensors.items()
                                               if k.startswith("objective.")})
        metrics = self.run_dir / METRICS_FILE
        offset = meta.get("metrics_offset")
        if isinstance(offset, int):  # what was logged up to the checkpoint
            self.history = read_metrics(metrics, end=offset)
        else:  # the older layout: the rows up to the checkpoint's step
            self.history = [r for r in read_metrics(metrics) if r["step"] <= self.step]
        self.saved_step = self.step
        if not self.dist.is_main:
            return
        target = metrics
        try:  # drop what the killed run logged after its last checkpoint
            if isinstance(offset, int):
                cut_metrics(metrics, offset)
            else:
                write_text_atomic(metrics, "".join(json.dumps(r) + "\n" for r in self.history))
            target = self.run_dir / "model.safetensors"
            if not checkpoint.legacy:  # killed between publishing a checkpoint and updating these
                publish_model_files(self.run_dir, checkpoint.folder)
        except OSError as err:
            raise write_failed(err, target, self.run_dir, self.step) from None

    # ---- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write this step's checkpoint and publish it, all or nothing (:func:`state.write_checkpoint`)."""
        if self.run_dir is None:
            return
        # under FSDP gathering the shards is a collective: every rank takes part, rank 0 alone writes
        state = dist_utils.full_state_dict(self.model, self.raw_model, self.dist)
        optim_state = dist_utils.full_optimizer_state(self.model, self.raw_model, self.optimizer, self.dist)
        objective_state = {}
        if hasattr(self.objective, "state_tensors"):  # e.g. carried RNN states, one row per stream
            objective_state = dist_utils.merge_rank_rows(self.objective.state_tensors(),
                                                         getattr(self.objective, "state_batch_dims", {}), self.dist)
        if not self.dist.is_main:
            return
        optim_tensors, optim_meta = flatten_optimizer(optim_state)
        tensors = {**optim_tensors, **rng_tensors()}
        tensors.update({f"objective.{k}": v for k, v in objective_state.items()})
        files = dict(self.files)
        if self.run_info is not None:
            files["run.json"] = lambda path: write_json_atomic(path, self.run_info)
        write_checkpoint(
            self.run_dir, step=self.step, model=self.raw_model, weights=state,
            tensors={k: v.cpu() for k, v in tensors.items()}, files=files, metrics=self.run_dir / METRICS_FILE,
            complete_step=self.saved_step,
            meta={"step": self.step, "tokens": self.tokens, "elapsed": self.elapsed,
                  "val_loss": self.last_val, "best_val_loss": self.best_val,
                  "world_size": self.dist.world_size, "config": dataclasses.asdict(self.config),
                  "optimizer": optim_meta},
        )
        self.saved_step = self.step
        dispatch(self.callbacks, "on_checkpoint", self, self.step)

    def _log(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.run_dir is not None and self.dist.is_main:
            path = self.run_dir / METRICS_FILE
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            except OSError as err:
                raise write_failed(err, path, self.run_dir, self.saved_step) from None

    # ---- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str = "val") -> float:
        """Mean loss over ``eval_iters`` fixed batches of ``split`` (the same batches every time)."""
        self.model.eval()
        total = 0.0
        for i in range(self.config.eval_iters):
            batch = self.objective.batch(split, -1 - i, self.config.batch_size)
            batch = move(slice_batch(batch, self.dist.rank, self.dist.world_size), self.device)
            with self.autocast:
                total += float(self.objective.loss(self.raw_model, batch))
        self.model.train()
        return dist_utils.mean_across_ranks(total / self.config.eval_iters, self.dist)

    # ---- the loop ------------------------------------------------------------------------------
    def train_step(self) -> tuple[float, int]:
        """One optimizer step over ``grad_accum`` micro-batches; returns (mean loss, tokens)."""
        c = self.config
        lr = learning_rate(self.step, lr=c.lr, min_lr=c.min_lr, warmup_steps=c.warmup_steps,
                           total_steps=c.steps, schedule=c.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        batch = self.objective.batch("train", self.step, c.batch_size)
        local = slice_batch(batch, self.dist.rank, self.dist.world_size)
        total, tokens = torch.zeros((), device=self.device), 0
        for micro in range(c.grad_accum):
            part = move(slice_batch(local, micro, c.grad_accum), self.device, pin=True)
            tokens += self.objective.count_tokens(part)
            sync = micro == c.grad_accum - 1
            with dist_utils.maybe_no_sync(self.model, self.dist, sync):
                with self.autocast:
                    loss = self.objective.loss(self.model, part) / c.grad_accum
                loss.backward()
            total += loss.detach().float()  # summed on the device: one host sync per step, below
        if c.grad_clip:
            dist_utils.clip_grad_norm(self.model, c.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        dist_utils.debug_record(self.dist, self.model, self.step, local)
        total_loss = float(total)
        if not math.isfinite(total_loss):
            raise AttnlabError(f"the loss became {total_loss} at step {self.step}; lower the learning rate")
        self.lr = lr
        return dist_utils.mean_across_ranks(total_loss, self.dist), tokens * self.dist.world_size

    def fit(self) -> TrainResult:
        c = self.config
        self.model.train()
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=c.steps, initial=self.step, desc=self.description, unit="step",
                       dynamic_ncols=True, leave=True,
                       mininterval=0.5 if sys.stderr.isatty() else 15.0)
        stopped_early = False
        train_loss = math.nan
        last_tick, window_tokens = time.perf_counter(), 0
        try:
            while self.step < c.steps:
                start = time.perf_counter()
                train_loss, tokens = self.train_step()
                self.elapsed += time.perf_counter() - start
                self.tokens += tokens
                window_tokens += tokens
                if self.step % c.log_every == 0 or self.step == c.steps:
                    now = time.perf_counter()
                    tps = window_tokens / max(now - last_tick, 1e-9)
                    last_tick, window_tokens = now, 0
                    row = {"step": self.step, "loss": round(train_loss, 6), "lr": self.lr,
                           "tokens_per_sec": round(tps, 1), "time": round(self.elapsed, 3)}
                    if self.flops_per_token_and_peak:
                        row["mfu"] = round(mfu_utils.mfu(tps, *self.flops_per_token_and_peak), 4)
                    self._log(row)
                    dispatch(self.callbacks, "on_step", self, row)
                    if bar is not None:
                        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{self.last_val:.4f}",
                                        tok_s=f"{tps:,.0f}", refresh=False)
                if bar is not None:
                    bar.update(1)
                timed_out = bool(c.max_time) and self.elapsed >= c.max_time
                if self.step % c.eval_every == 0 or self.step == c.steps or timed_out:
                    stop = self._eval_and_callbacks(train_loss)
                    if bar is not None:  # the bar's last line shows the newest validation loss
                        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{self.last_val:.4f}", refresh=True)
                    if stop or timed_out:
                        stopped_early = self.step < c.steps
                if self.step % c.ckpt_every == 0 or self.step == c.steps or stopped_early:
                    self.save_checkpoint()
                if stopped_early:
                    break
        finally:
            if bar is not None:
                bar.close()
        if math.isnan(self.last_val) or self.history and "val_loss" not in self.history[-1]:
            self._eval_and_callbacks(train_loss)
            self.save_checkpoint()
        self.write_plot()
        dist_utils.barrier(self.dist)
        result = TrainResult(step=self.step, train_loss=train_loss, val_loss=self.last_val,
                             best_val_loss=self.best_val, elapsed=self.elapsed, tokens=self.tokens,
                             tokens_per_sec=self.tokens / max(self.elapsed, 1e-9), stopped_early=stopped_early,
                             history=self.history)
        dispatch(self.callbacks, "on_end", self, result)
        return result

    def _eval_and_callbacks(self, train_loss: float) -> bool:
        val = self.evaluate("val")
        self.last_val = val
        self.best_val = min(self.best_val, val)
        row = {"step": self.step, "val_loss": round(val, 6), "time": round(self.elapsed, 3)}
        self._log(row)
        if self.show_progress:
            from tqdm.auto import tqdm

            tqdm.write(f"step {self.step:>6}: train loss {train_loss:.4f}, validation loss {val:.4f}", file=sys.stderr)
        return dispatch(self.callbacks, "on_eval", self, row)

    def write_plot(self) -> None:
        if self.run_dir is None or not self.dist.is_main or not self.history:
            return
        from attnlab.training.plots import plot_runs

        try:
            plot_runs([(self.run_dir.name, self.history)], self.run_dir / "loss.png",
                      title=f"{self.run_dir.name}: training and held-out validation loss")
        except OSError as err:
            raise write_failed(err, self.run_dir / "loss.png", self.run_dir, self.saved_step) from None


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
