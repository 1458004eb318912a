"""The one place a run is started or resumed, and its training config merged.

A run is defined by a recipe (``attnlab.recipes``: what to build), the recipe's options (data,
tokenizer, task ...) and the run's options (:class:`RunOptions`: preset, steps, batch, learning
rate, seed, ``--set`` ...). The training config is merged here and nowhere else, each source
overriding the one before it::

    TrainConfig defaults < the recipe's defaults < the preset's < flags (--steps, --lr ...) < --set

The command line, ``attnlab.train(...)``, ``compare`` and ``ablate`` all come through here. On
``--resume`` everything that defines the run (the recipe's options, preset, seed, --set, steps,
batch, learning rate, optimizer, schedule) comes from the run folder; a flag that contradicts it is
an error, except more ``--steps``, which extends the run and says so.

This module knows no model family: it is handed a recipe object.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnlab.checkpoint import rename_fields
from attnlab.errors import AttnlabError
from attnlab.io import read_json, write_text_atomic
from attnlab.memory import planned_training
from attnlab.options import check_value, field_types, option, options_from, parse_text
from attnlab.training.loggers import make_loggers, parse_log
from attnlab.training.run_folder import LOCK_FILE, RunLock, check_overwritable, clear_run
from attnlab.training.trainer import TrainConfig, Trainer, TrainResult, run_is_resumable, seed_everything
from attnlab.version import __version__

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
MAX_CONFIG_BYTES = 1 << 20


@dataclass
class RunOptions:
    """How a run is trained and where it lives (the options every kind shares)."""

    preset: str | None = option(None, "model size, from the kind's presets (listed below)")
    steps: int | None = option(None, "optimizer steps (default: the kind's own)", minimum=1)
    batch_size: int | None = option(None, "sequences per optimizer step, over all micro-steps and ranks",
                                    minimum=1)
    grad_accum: int | None = option(None, "micro-steps per optimizer step", minimum=1)
    lr: float | None = option(None, "peak learning rate (default: the kind's own)", minimum=0.0)
    optimizer: str | None = option(None, "adamw or muon (default: the kind's own)", choices=("adamw", "muon"))
    seed: int = option(1337, "seed for weights, batches and dropout", minimum=0, maximum=2**63 - 1)
    set: list[str] = option([], "any model or training config field, e.g. --set n_layer=6 --set dropout=0.2",
                            metavar="KEY=VALUE")
    config: str | None = option(None, "a run's config.yaml: train that run again, bit for bit (flags given "
                                      "here override it)", metavar="FILE.yaml")
    out: str | None = option(None, "run folder (default: runs/<kind>-<data>, numbered if taken)")
    resume: bool = option(False, "continue the run in --out from its last checkpoint")
    overwrite: bool = option(False, "replace the attnlab run in --out (files that are not attnlab's are kept)")
    device: str = option("auto", "auto (CUDA if there is a GPU, then Apple's MPS, then the CPU), cpu, cuda, "
                                 "cuda:N or mps")
    threads: int | None = option(None, "CPU threads for PyTorch (default: one per core); on a machine busy "
                                       "with other jobs, 1 is often much faster", minimum=1)
    dtype: str | None = option(None, "float32, or bfloat16 autocast (for GPUs); default float32",
                               choices=("float32", "bfloat16"))
    compile: bool = option(False, "torch.compile the model")
    fsdp: bool = option(False, "under torchrun: FullyShardedDataParallel instead of DDP")
    max_time: float | None = option(None, "stop after this many seconds of training", minimum=0.0)
    log: str = option("samples", "what to log besides metrics.jsonl, comma-separated: csv (metrics.csv), "
                                 "tensorboard, wandb (offline unless WANDB_MODE says otherwise), samples (a short "
                                 "sample at each evaluation, in samples.jsonl), or none")
    no_sample: bool = option(False, "do not print a sample at the end")
    quiet: bool = option(False, "no progress bar")


# run options that define a run: on --resume they come from the run folder
DEFINING = ("preset", "steps", "batch_size", "grad_accum", "lr", "optimizer", "seed", "set")
# flags that go into TrainConfig as they are
TRAIN_FLAGS = ("steps", "batch_size", "grad_accum", "lr", "device", "dtype", "optimizer", "max_time")


def parse_sets(items: Iterable[str] | dict[str, Any] | None) -> dict[str, str | Any]:
    """``--set key=value`` items as ``{key: text}`` (a dict passes through)."""
    if isinstance(items, dict):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise AttnlabError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def split_sets(sets: dict[str, Any], model_config_class: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send each ``--set`` key to the model config or the training config, each value parsed by its field's
    type (old field names mapped to today's); an unknown key is an error."""
    sets = rename_fields(model_config_class, sets)
    model_types, train_types = field_types(model_config_class), field_types(TrainConfig)
    model_part, train_part = {}, {}
    for key, value in sets.items():
        if key in model_types:
            target, types = model_part, model_types
        elif key in train_types:
            target, types = train_part, train_types
        else:
            raise AttnlabError(f"--set {key}: no such setting. Model fields: {', '.join(sorted(model_types))}. "
                               f"Training fields: {', '.join(sorted(train_types))}")
        target[key] = parse_text(value, types[key], f"--set {key}") if isinstance(value, str) else value
    return model_part, train_part


def merge_train_config(recipe: Any, preset: str, run: RunOptions, train_sets: dict[str, Any],
                       extra: dict[str, Any] | None = None, replayed: dict[str, Any] | None = None) -> TrainConfig:
    """TrainConfig defaults < recipe < preset < ``replayed`` (a config file's) < flags < ``extra`` (a plan's
    settings) < ``--set``."""
    values = {**recipe.training_for(preset), **(replayed or {}), "seed": run.seed}
    values.update({flag: getattr(run, flag) for flag in TRAIN_FLAGS if getattr(run, flag) is not None})
    if run.fsdp:
        values["fsdp"] = True
    if run.compile:
        values["compile"] = True
    values.update(extra or {})
    values.update(train_sets)
    return TrainConfig(**values)


def default_run_dir(kind: str, data: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(data)).stem or str(data)).strip("-") or "run"
    base = Path("runs") / f"{kind}-{slug}"
    candidate, n = base, 2
    while candidate.exists() and any(candidate.iterdir()):
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


def is_rank_zero() -> bool:
    """Under torchrun only global rank 0 locks and clears the run folder."""
    return os.environ.get("RANK", "0") == "0"


def data_of(options: Any) -> str:
    return str(getattr(options, "data", None) or getattr(options, "task", None) or "run")


def resolve_run_dir(recipe: Any, options: Any, run: RunOptions) -> Path:
    """Where the run lives (its contents are checked under the lock)."""
    if run.resume:
        if not run.out:
            raise AttnlabError("--resume needs a run folder: --resume runs/NAME (or --out runs/NAME --resume)")
        run_dir = Path(run.out)
        if not run_is_resumable(run_dir):
            raise AttnlabError(f"nothing to resume in {run_dir}: it holds no checkpoint (was it trained with "
                               "attnlab, and did it reach its first checkpoint?)")
        return run_dir
    if run.out:
        run_dir = Path(run.out)
        if run_dir.exists() and not run_dir.is_dir():
            raise AttnlabError(f"--out {run_dir} is a file, not a folder")
        if run.overwrite:  # refuse before anything is locked, built or written
            check_overwritable(run_dir, protect=[getattr(options, "data", None) or ""])
        return run_dir
    return default_run_dir(recipe.name, data_of(options))


def check_new_run_dir(run_dir: Path, options: Any, run: RunOptions) -> None:
    """A new run goes into an empty folder, or replaces a run with --overwrite (checked under the lock)."""
    held = [p for p in run_dir.iterdir() if p.name != LOCK_FILE] if run_dir.is_dir() else []
    if held and not run.overwrite:
        raise AttnlabError(f"{run_dir} already holds files: use --resume {run_dir} to continue that run, "
                           "--overwrite to replace it, or another --out")
    if held:
        check_overwritable(run_dir, protect=[getattr(options, "data", None) or ""])


def saved_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the run's recorded args, its recorded TrainConfig or None) from run.json / the checkpoint."""
    info = read_json(run_dir / RUN_FILE, what="run description")
    if not isinstance(info, dict) or not isinstance(info.get("args", {}), dict):
        raise AttnlabError(f"{run_dir / RUN_FILE} is not an attnlab run description")
    config = info.get("train_config")
    if config is None:  # runs from before run.json recorded it: the trainer state has it
        state = run_dir / "trainer_state.json"
        if state.is_file():
            config = read_json(state, what="trainer state").get("config")
    return info, config


def restore(recipe: Any, run_dir: Path, given_options: dict[str, Any], given_run: dict[str, Any]
            ) -> tuple[Any, RunOptions, dict[str, Any] | None]:
    """The run's own options on --resume; what the caller gave must agree (more steps excepted)."""
    info, saved_config = saved_run(run_dir)
    if info.get("kind") != recipe.name:
        raise AttnlabError(f"{run_dir} is a '{info.get('kind')}' run; resume it with 'attnlab train "
                           f"{info.get('kind')} --resume {run_dir}'")
    args = info.get("args", {})
    option_names = [f.name for f in dataclasses.fields(recipe.options_class)]
    stored_options = {k: v for k, v in args.items() if k in option_names}
    stored_run = {k: v for k, v in args.items() if k in DEFINING}
    if saved_config:
        stored_run["steps"] = saved_config.get("steps", stored_run.get("steps"))
    options = recipe.options(**stored_options)
    for key, value in given_options.items():
        if key in stored_options and value != getattr(options, key):
            raise AttnlabError(f"--{key.replace('_', '-')} {value} contradicts the run in {run_dir}, which was "
                               f"trained with {getattr(options, key)!r}; leave it out to resume, or start a new run")
    values = {**given_run}
    for key in DEFINING:
        stored = stored_run.get(key)
        if saved_config and key in TRAIN_FLAGS:  # what the run really used, defaults included
            stored = saved_config.get(key, stored)
        if key == "preset":
            stored = stored or recipe.former_default_preset or recipe.default_preset
        if key == "set":
            stored = list(stored or [])
        if key in given_run and given_run[key] != stored:
            if key == "steps" and stored is not None and given_run[key] > stored:
                print(f"attnlab: note: extending the run from {stored} to {given_run[key]} steps (the learning "
                      "rate schedule is stretched to the new length)", file=sys.stderr)
                continue
            raise AttnlabError(f"--{key.replace('_', '-')} {given_run[key]} contradicts the run in {run_dir}, "
                               f"which was trained with {stored!r}; leave it out to resume, or start a new run")
        values[key] = stored
    return options, options_from(RunOptions, values, where="run options"), saved_config


def build(recipe: Any, options: Any, run: RunOptions, run_dir: Path, resume: bool,
          extra_train: dict[str, Any] | None = None, saved_config: dict[str, Any] | None = None,
          replayed: dict[str, Any] | None = None) -> tuple[Any, TrainConfig]:
    """The recipe's Setup and the merged TrainConfig; the initial weights depend on the seed alone."""
    model_sets, train_sets = split_sets(parse_sets(run.set), recipe.model_class.config_class)
    preset = run.preset or recipe.default_preset
    if recipe.one_thread_on_cpu and run.threads is None and run.device in ("cpu", "auto") \
            and "OMP_NUM_THREADS" not in os.environ:
        import torch  # small recurrent models: a second thread only spins (and is slower on a busy machine)

        torch.set_num_threads(1)
    seed_everything(run.seed)
    if saved_config and resume:  # the run's own schedule; only what may change on resume is taken anew
        values = {**saved_config, "steps": run.steps or saved_config["steps"]}
        for key in ("device", "dtype", "max_time"):
            if getattr(run, key) is not None:
                values[key] = getattr(run, key)
        values.update(compile=run.compile, fsdp=run.fsdp)
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in values.items() if k in names})
    else:
        config = merge_train_config(recipe, preset, run, train_sets, extra_train, replayed)
    with planned_training(recipe.model_class, config):  # the model's config is checked to fit before it is built
        setup = recipe.build(options, run_dir, resume, model_sets, preset, run.seed)
    return setup, config


def run_record(recipe: Any, options: Any, run: RunOptions, config: TrainConfig, setup: Any) -> dict[str, Any]:
    """What run.json keeps: the kind, every option (flat, as ``args``), the merged TrainConfig, the data."""
    kept = {k: v for k, v in dataclasses.asdict(run).items() if k in DEFINING}
    args = {**dataclasses.asdict(options), **kept}
    return {"kind": recipe.name, "attnlab_version": __version__, "args": args,
            "train_config": dataclasses.asdict(config), **setup.run_info}


def start_run(recipe: Any, options: dict[str, Any] | None = None, run: dict[str, Any] | None = None, *,
              callbacks: list | None = None) -> tuple[TrainResult, Trainer]:
    """Train (or resume) a run of ``recipe``; ``options`` and ``run`` hold what the caller set explicitly."""
    given_options, given_run = dict(options or {}), dict(run or {})
    replayed = None
    if given_run.get("config"):
        if given_run.get("resume"):
            raise AttnlabError("--config starts a new run from a config file; --resume continues one: give one")
        file_options, file_run, replayed = read_run_config(given_run["config"], recipe.name)
        if "lr" in given_run and replayed.get("min_lr") == replayed.get("lr", 0) / 10:
            replayed.pop("min_lr")  # a new peak brings its own floor, as it would without the file
        given_options, given_run = {**file_options, **given_options}, {**file_run, **given_run}
    run_options = options_from(RunOptions, given_run, where="run options")
    parse_log(run_options.log)  # a bad --log is an error before anything is built
    if run_options.threads is not None:
        import torch

        torch.set_num_threads(run_options.threads)
    recipe_options = recipe.options(**given_options)
    run_dir = resolve_run_dir(recipe, recipe_options, run_options)
    lock = RunLock(run_dir)
    if is_rank_zero():
        lock.acquire()
    try:
        saved_config = None
        if run_options.resume:
            recipe_options, run_options, saved_config = restore(recipe, run_dir, given_options, given_run)
        elif is_rank_zero():
            check_new_run_dir(run_dir, recipe_options, run_options)
        return _train(recipe, recipe_options, run_options, run_dir, saved_config, callbacks, replayed)
    finally:
        lock.release()


def open_run(recipe: Any, options: Any, run: RunOptions, run_dir: Path, *, saved_config: dict[str, Any] | None = None,
             replayed: dict[str, Any] | None = None, extra_train: dict[str, Any] | None = None,
             callbacks: list | None = None, run_info: dict[str, Any] | None = None, progress: bool | None = None,
             description: str | None = None) -> tuple[Any, TrainConfig, Trainer]:
    """Build the run and its Trainer, started or resumed (``run.resume``): what every way of training shares.

    A new run's folder is cleared of an older run (``--overwrite``) and gets its ``config.yaml``; the
    trainer writes ``run.json`` (``run_info`` adds to it) with the first checkpoint.
    """
    # run.json and config.yaml name the preset the run used, so a later change of default cannot move it
    run = dataclasses.replace(run, preset=run.preset or recipe.default_preset)
    setup, config = build(recipe, options, run, run_dir, run.resume, extra_train=extra_train,
                          saved_config=saved_config, replayed=replayed)
    if not run.resume and is_rank_zero():
        if run.overwrite:
            kept = clear_run(run_dir)
            if kept:
                print(f"attnlab: note: --overwrite replaced the run in {run_dir} and kept the files that are "
                      f"not attnlab's: {', '.join(kept)}", file=sys.stderr)
        write_run_config(run_dir / CONFIG_FILE, recipe, options, run, config)
    record = {**run_record(recipe, options, run, config, setup), **(run_info or {})}
    loggers = make_loggers(parse_log(run.log), run_dir, sample=setup.eval_sample, config=record)
    trainer = Trainer(setup.model, setup.objective, config, run_dir=run_dir, files=setup.files,
                      run_info=record, callbacks=[*loggers, *(callbacks or [])],
                      progress=not run.quiet if progress is None else progress,
                      description=description or f"{recipe.name} {run_dir.name}")
    if run.resume:
        trainer.resume()
    return setup, config, trainer


def _train(recipe: Any, options: Any, run: RunOptions, run_dir: Path, saved_config: dict[str, Any] | None,
           callbacks: list | None, replayed: dict[str, Any] | None = None) -> tuple[TrainResult, Trainer]:
    setup, config, trainer = open_run(recipe, options, run, run_dir, saved_config=saved_config, replayed=replayed,
                                      callbacks=callbacks)
    main = trainer.dist.is_main
    if main:
        model = setup.model
        count = model.parameter_count() if hasattr(model, "parameter_count") else sum(
            p.numel() for p in model.parameters())
        what = "resuming" if run.resume else "training"
        print(f"{what} {recipe.name} ({count / 1e6:.2f}M parameters) in {run_dir} on {trainer.device}"
              f" for {config.steps} steps of {config.batch_size} sequences"
              + (f" from step {trainer.step}" if run.resume else ""), file=sys.stderr)
        if config.warmup_steps >= config.steps and config.schedule != "constant":
            print(f"attnlab: note: the warm-up ({config.warmup_steps} steps) is as long as the run ({config.steps} "
                  f"steps): the learning rate never reaches its peak; --set warmup_steps={max(1, config.steps // 10)} "
                  "fixes that", file=sys.stderr)
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
        sharded = config.fsdp and trainer.dist.world_size > 1  # a forward pass needs every rank
        if sharded and setup.sample is not None and not run.no_sample:
            print(f"attnlab: note: no sample under FSDP; 'attnlab generate {run_dir}' writes one", file=sys.stderr)
        elif setup.sample is not None and not run.no_sample:
            print("\n--- sample ---", file=sys.stderr)
            text = setup.sample(trainer.raw_model.eval())
            print(text, flush=True)
            if setup.describe_sample is not None:
                print(f"attnlab: note: {setup.describe_sample(text)}", file=sys.stderr)
    return result, trainer


def write_run_config(path: Path, recipe: Any, options: Any, run: RunOptions, config: TrainConfig) -> None:
    """The run's fully resolved configuration as YAML: ``attnlab train --config FILE`` repeats it."""
    import yaml

    record = {"kind": recipe.name, "attnlab_version": __version__, "options": dataclasses.asdict(options),
              "run": {k: v for k, v in dataclasses.asdict(run).items() if k in DEFINING},
              "train": dataclasses.asdict(config)}
    header = (f"# attnlab run configuration, resolved. `attnlab train --config {path.name} --out NEW_FOLDER`\n"
              "# trains this run again, bit for bit on the same machine; flags given with it override it.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, header + yaml.safe_dump(record, sort_keys=False, allow_unicode=True))


def read_run_config(path: str | Path, kind: str | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(recipe options, run options, TrainConfig values) from a config.yaml written by a run."""
    record = _load_config_file(path)
    parts = ("options", "run", "train")
    if not all(isinstance(record.get(p, {}), dict) for p in parts):
        raise AttnlabError(f"--config {path} is not an attnlab run configuration (kind, options, run, train)")
    if kind is not None and record.get("kind") != kind:
        raise AttnlabError(f"--config {path} describes a {record.get('kind')!r} run, not {kind!r}: "
                           f"'attnlab train --config {path}' picks the kind itself")
    run = {k: v for k, v in record.get("run", {}).items() if k in DEFINING}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(record.get("train", {})) - names)
    if unknown:
        raise AttnlabError(f"--config {path}: unknown training field(s) {', '.join(unknown)}")
    types = field_types(TrainConfig)  # each value of its field's type, as a flag's would be
    train = {k: check_value(v, types[k], f"--config {path}: train.{k}") for k, v in record.get("train", {}).items()}
    return dict(record.get("options", {})), run, train


def kind_of_config(path: str | Path) -> str:
    """The kind a config.yaml trains (for ``attnlab train --config FILE`` without a kind)."""
    record = _load_config_file(path)
    if not isinstance(record.get("kind"), str):
        raise AttnlabError(f"--config {path} is not an attnlab run configuration (it names no kind)")
    return record["kind"]


def _load_config_file(path: str | Path) -> dict[str, Any]:
    """A config.yaml as a mapping: a missing, oversized, unreadable or non-mapping file is one error."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"--config {path}: no such file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise AttnlabError(f"--config {path} is larger than 1 MB; it is not an attnlab run configuration")
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:
        raise AttnlabError(f"--config {path}: cannot read it as YAML ({err})") from None
    if not isinstance(record, dict):
        raise AttnlabError(f"--config {path} is not an attnlab run configuration (kind, options, run, train)")
    return record
