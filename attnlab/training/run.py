"""From ``attnlab train`` options to a finished run folder (shared by every model kind)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from attnlab import __version__
from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training.recipes import parse_sets, split_overrides
from attnlab.training.run_folder import LOCK_FILE, RunLock, check_overwritable, clear_run
from attnlab.training.trainer import TrainConfig, Trainer, TrainResult, run_is_resumable, seed_everything

# options that define a run; on --resume they come from run.json, not from the command line
DEFINING = ("data", "tokenizer", "vocab_size", "val_fraction", "preset", "set", "seed", "task", "k", "n_pairs",
            "batch_size", "grad_accum", "lr", "optimizer")
TRAIN_FLAGS = {"steps": "steps", "batch_size": "batch_size", "grad_accum": "grad_accum", "lr": "lr",
               "device": "device", "dtype": "dtype", "optimizer": "optimizer", "max_time": "max_time"}


def default_run_dir(kind: str, data: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(data)).stem or str(data)).strip("-") or "run"
    base = Path("runs") / f"{kind}-{slug}"
    candidate, n = base, 2
    while candidate.exists() and any(candidate.iterdir()):
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


def resolve_run_dir(options: argparse.Namespace) -> tuple[Path, bool]:
    """Where the run lives and whether it resumes (its contents are checked under the lock)."""
    if options.resume is not None:
        target = options.resume if isinstance(options.resume, str) else options.out
        if not target:
            raise AttnlabError("--resume needs a run folder: --resume runs/NAME (or --out runs/NAME --resume)")
        run_dir = Path(target)
        if not run_is_resumable(run_dir):
            raise AttnlabError(f"nothing to resume in {run_dir}: it holds no trainer_state.json/.safetensors "
                               "(was it trained with attnlab, and did it reach its first checkpoint?)")
        return run_dir, True
    if options.out:
        run_dir = Path(options.out)
        if run_dir.exists() and not run_dir.is_dir():
            raise AttnlabError(f"--out {run_dir} is a file, not a folder")
        if options.overwrite:  # refuse before anything is locked, built or written
            check_overwritable(run_dir, protect=[getattr(options, "data", None) or ""])
        return run_dir, False
    return default_run_dir(options.kind, getattr(options, "data", None) or getattr(options, "task", "run")), False


def check_new_run_dir(options: argparse.Namespace, run_dir: Path) -> None:
    """A new run goes into an empty folder, or replaces a run with --overwrite (checked, under the lock)."""
    held = [p for p in run_dir.iterdir() if p.name != LOCK_FILE] if run_dir.is_dir() else []
    if held and not options.overwrite:
        raise AttnlabError(f"{run_dir} already holds files: use --resume {run_dir} to continue that run, "
                           "--overwrite to replace it, or another --out")
    if held:
        check_overwritable(run_dir, protect=[getattr(options, "data", None) or ""])


def is_rank_zero() -> bool:
    """Under torchrun only global rank 0 locks and clears the run folder."""
    return os.environ.get("RANK", "0") == "0"


def restore_options(options: argparse.Namespace, run_dir: Path) -> None:
    """On resume, the run's defining options come from its run.json."""
    info = read_json(run_dir / "run.json", what="run description")
    if info.get("kind") != options.kind:
        raise AttnlabError(f"{run_dir} is a '{info.get('kind')}' run; resume it with 'attnlab train "
                           f"{info.get('kind')} --resume {run_dir}'")
    for key, value in info.get("args", {}).items():
        if key in DEFINING:
            setattr(options, key, value)


def train_from_cli(recipe: Any, options: argparse.Namespace) -> TrainResult:
    threads = getattr(options, "threads", None)
    if threads is not None:
        if threads < 1:
            raise AttnlabError("--threads must be at least 1")
        import torch

        torch.set_num_threads(threads)
    run_dir, resume = resolve_run_dir(options)
    lock = RunLock(run_dir)
    if is_rank_zero():
        lock.acquire()
    try:
        return train_locked(recipe, options, run_dir, resume)
    finally:
        lock.release()


def train_locked(recipe: Any, options: argparse.Namespace, run_dir: Path, resume: bool) -> TrainResult:
    """The run, while this process holds the run folder's lock."""
    if resume:
        restore_options(options, run_dir)
    elif is_rank_zero():
        check_new_run_dir(options, run_dir)
    sets = parse_sets(options.set)
    model_overrides, train_overrides = split_overrides(sets, recipe.model_class.config_class, TrainConfig)
    seed_everything(options.seed)  # the initial weights depend on the seed alone
    setup = recipe.build(options, run_dir, resume, model_overrides, options.seed)
    values = {**setup.train_defaults, "seed": options.seed}
    for flag, field_name in TRAIN_FLAGS.items():
        if getattr(options, flag, None) is not None:
            values[field_name] = getattr(options, flag)
    if options.fsdp:
        values["fsdp"] = True
    if options.compile:
        values["compile"] = True
    values.update(train_overrides)
    config = TrainConfig(**values)
    if not resume and options.overwrite and is_rank_zero():
        kept = clear_run(run_dir)
        if kept:
            print(f"attnlab: note: --overwrite replaced the run in {run_dir} and kept the files that are not "
                  f"attnlab's: {', '.join(kept)}", file=sys.stderr)
    args_record = {k: v for k, v in vars(options).items() if k not in ("func", "options", "resume", "overwrite")}
    run_info = {"kind": options.kind, "attnlab_version": __version__, "args": args_record, **setup.run_info}
    trainer = Trainer(setup.model, setup.objective, config, run_dir=run_dir, files=setup.files, run_info=run_info,
                      progress=not options.quiet, description=f"{options.kind} {run_dir.name}")
    if resume:
        trainer.resume()
    main = trainer.dist.is_main
    if main:
        model = setup.model
        count = model.parameter_count() if hasattr(model, "parameter_count") else sum(
            p.numel() for p in model.parameters())
        what = "resuming" if resume else "training"
        print(f"{what} {options.kind} ({count / 1e6:.2f}M parameters) in {run_dir} on {trainer.device}"
              f" for {config.steps} steps of {config.batch_size} sequences"
              + (f" from step {trainer.step}" if resume else ""), file=sys.stderr)
        if config.dtype == "bfloat16" and trainer.device.type == "cpu":
            print("attnlab: note: --dtype bfloat16 on a CPU: it runs, but many CPUs have no fast bfloat16 matrix "
                  "product (on this project's test machine it is many times slower than float32); it pays on GPUs",
                  file=sys.stderr)
    result = trainer.fit()
    if main:
        print(f"done: step {result.step}, train loss {result.train_loss:.4f}, validation loss "
              f"{result.val_loss:.4f} (best {result.best_val_loss:.4f}), {result.tokens_per_sec:,.0f} tokens/s, "
              f"{result.elapsed:.0f} s", file=sys.stderr)
        print(f"run saved in {run_dir} (loss curve: {run_dir / 'loss.png'})", file=sys.stderr)
        if setup.sample is not None and not options.no_sample:
            print("\n--- sample ---", file=sys.stderr)
            print(setup.sample(trainer.raw_model.eval()))
    return result
