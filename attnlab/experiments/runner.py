"""Train one run of an experiment plan in its own folder, resumably.

A plan (``attnlab compare``, ``attnlab ablate``) is a list of :class:`RunSpec`. Each spec is trained
by the same recipe ``attnlab train KIND`` uses (:mod:`attnlab.recipes`, merged by :mod:`attnlab.training.session`), in
``runs_dir/<spec.name>``, so every sub-run is an ordinary run folder (``attnlab train KIND --resume
DIR`` works on it too). The folder tells how far the run got:

- ``result.json`` present: finished and evaluated; the plan skips it;
- ``trainer_state.*`` present: interrupted; the run resumes from its last checkpoint
  (:meth:`Trainer.resume`: weights, optimizer, RNG, step, elapsed time);
- otherwise: (re)started from scratch.

``spec.json`` records the spec (and, for a wall-clock budget, the step count calibrated for it), so a
resumed run trains under the same schedule; a folder whose spec differs from the plan's is an error
(a different experiment) unless the plan is started ``fresh``.

**Same wall-clock budget.** With ``budget_s`` set, a few throw-away steps on a copy of the model
measure the time per step; the run then gets ``steps = budget / time per step`` (so its cosine
schedule decays over the budget), and ``max_time = budget`` stops it if the machine slows down.
Only optimizer steps count against the budget, not evaluation or checkpoints.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.io import read_json, write_json_atomic, write_text_atomic
from attnlab.training.run_folder import LOCK_FILE, RunLock, clear_run, is_owned, is_run_folder

SPEC_FILE = "spec.json"
RESULT_FILE = "result.json"
CALIBRATION_SECONDS = 2.5  # timed steps per calibration (after two warm-up steps)
CALIBRATION_MAX_STEPS = 40


@dataclass
class RunSpec:
    """One sub-run of a plan: what ``attnlab train KIND`` would be given."""

    name: str  # folder name, unique in the plan
    kind: str  # recipe: gpt, rnn, lstm, gru, bahdanau, seq2seq-rnn, transformer, ...
    label: str = ""  # how tables and plots call it
    options: dict[str, Any] = field(default_factory=dict)  # recipe options: data, task, tokenizer, preset...
    model: dict[str, Any] = field(default_factory=dict)  # model config overrides (like --set)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides (steps, lr, batch_size...)
    budget_s: float | None = None  # same wall-clock training budget: steps are calibrated to fit it
    seed: int = 1337

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # plain JSON types, as read back from spec.json


@dataclass
class RunOutcome:
    """What training left: the run folder and the trainer's numbers."""

    run_dir: Path
    steps: int
    step: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    elapsed: float  # seconds spent in optimizer steps
    tokens: int
    tokens_per_sec: float
    parameters: int
    history: list[dict[str, Any]]
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("history")
        out["run_dir"] = str(self.run_dir)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def is_finished(run_dir: Path) -> bool:
    return (run_dir / RESULT_FILE).is_file()


def read_result(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / RESULT_FILE, what="experiment result")


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    write_json_atomic(run_dir / RESULT_FILE, result)


def spec_options(spec: RunSpec, recipe: Any) -> tuple[Any, Any]:
    """(recipe options, run options) for ``spec``: what ``attnlab train KIND`` would be given."""
    from attnlab.options import options_from
    from attnlab.training.session import RunOptions

    run_names = {f.name for f in fields(RunOptions)}
    recipe_values = {k: v for k, v in spec.options.items() if k not in run_names}
    run_values = {k: v for k, v in spec.options.items() if k in run_names}
    run_values.update(seed=spec.seed, set=[f"{k}={v}" for k, v in spec.model.items()], quiet=True)
    return recipe.options(**recipe_values), options_from(RunOptions, run_values, where=spec.name)


def plan_training(spec: RunSpec, steps: int | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """The plan's own training settings for ``spec`` (its train part, then the budget's schedule);
    ``defaults`` are the kind's and preset's, which the budget shortens."""
    values = dict(spec.train)
    if steps is not None:
        values["steps"] = steps
    merged = {**defaults, **values}
    if spec.budget_s:
        values["max_time"] = float(spec.budget_s)
        total = merged.get("steps", 2000)
        values["warmup_steps"] = min(merged.get("warmup_steps", 100), max(1, total // 10))
        values["eval_every"] = min(merged.get("eval_every", 200), max(1, total // 8))
    values["ckpt_every"] = min(merged.get("ckpt_every", 500), values.get("eval_every", merged.get("eval_every", 200)))
    return values


def build_setup(spec: RunSpec, run_dir: Path, resume: bool, steps: int | None = None) -> tuple[Any, Any]:
    """(Setup, TrainConfig) for ``spec``, merged by the session like any run; weights follow ``spec.seed``."""
    from attnlab.recipes import get_recipe
    from attnlab.training.session import build, split_sets

    recipe = get_recipe(spec.kind)
    options, run = spec_options(spec, recipe)
    _, train_part = split_sets(dict(spec.model), recipe.model_class.config_class)
    if train_part:
        raise AttnlabError(f"{spec.name}: put the training settings {sorted(train_part)} in the spec's "
                           "train part")
    defaults = recipe.training_for(run.preset or recipe.default_preset)
    return build(recipe, options, run, run_dir, resume, extra_train=plan_training(spec, steps, defaults))


def seconds_per_step(spec: RunSpec, run_dir: Path) -> float:
    """Time one optimizer step of ``spec`` on a throw-away copy (nothing is written)."""
    from attnlab.training.trainer import Trainer

    setup, config = build_setup(spec, run_dir, resume=False, steps=10_000)
    trainer = Trainer(setup.model, setup.objective, config, run_dir=None, progress=False)
    for _ in range(2):  # first steps pay for allocation and kernel selection
        trainer.train_step()
    start, done = time.perf_counter(), 0
    while done < CALIBRATION_MAX_STEPS and time.perf_counter() - start < CALIBRATION_SECONDS:
        trainer.train_step()
        done += 1
    return (time.perf_counter() - start) / done


def prepare_folder(spec: RunSpec, run_dir: Path, fresh: bool) -> dict[str, Any] | None:
    """Check ``run_dir`` belongs to ``spec``; returns its recorded spec (None if it starts afresh)."""
    if fresh and run_dir.is_dir() and any(run_dir.iterdir()):
        if not is_run_folder(run_dir):
            raise AttnlabError(f"--fresh will not replace {run_dir}: it holds files that are not an experiment run; "
                               "move them away or choose another runs folder")
        clear_run(run_dir)
    if not (run_dir / SPEC_FILE).is_file():
        if run_dir.is_dir() and all(is_owned(p.name) for p in run_dir.iterdir()):
            clear_run(run_dir)  # killed before its spec was written: only attnlab's own files, start again
        if run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
            raise AttnlabError(f"{run_dir} holds files that are not an experiment run; move them away or "
                               "choose another runs folder")
        return None
    recorded = read_json(run_dir / SPEC_FILE, what="experiment run spec")
    if recorded.get("spec") != spec.to_dict():
        raise AttnlabError(
            f"{run_dir} holds a run with other settings than this plan asks for (changed budget, steps or "
            "size?); run again with --fresh to start over, or give another --runs folder"
        )
    return recorded


def train_run(spec: RunSpec, run_dir: Path, *, progress: bool = True, description: str | None = None,
              fresh: bool = False) -> RunOutcome:
    """Train ``spec`` in ``run_dir``: resume it if interrupted, start it otherwise.

    Do not call it on a finished run (see :func:`is_finished`): the caller skips those.
    """
    run_dir = Path(run_dir)
    with RunLock(run_dir):
        return train_locked(spec, run_dir, progress=progress, description=description, fresh=fresh)


def train_locked(spec: RunSpec, run_dir: Path, *, progress: bool, description: str | None,
                 fresh: bool) -> RunOutcome:
    """:func:`train_run` while this process holds the run folder's lock."""
    from attnlab.recipes import get_recipe
    from attnlab.training.session import open_run
    from attnlab.training.trainer import run_is_resumable

    recorded = prepare_folder(spec, run_dir, fresh)
    resume = recorded is not None and run_is_resumable(run_dir)
    if recorded is not None and not resume:  # killed before its first checkpoint: start again
        spec_text = (run_dir / SPEC_FILE).read_text(encoding="utf-8")
        clear_run(run_dir)
        write_text_atomic(run_dir / SPEC_FILE, spec_text)
    if recorded is not None:
        steps = recorded.get("steps")
    elif spec.budget_s:
        per_step = seconds_per_step(spec, run_dir)
        steps = max(10, int(spec.budget_s / per_step))
    else:
        steps = None
    recipe = get_recipe(spec.kind)
    options, run = spec_options(spec, recipe)
    run.steps, run.resume, run.log = steps, resume, "none"
    defaults = recipe.training_for(run.preset or recipe.default_preset)
    _, config, trainer = open_run(recipe, options, run, run_dir, extra_train=plan_training(spec, steps, defaults),
                                  run_info={"experiment": spec.to_dict()}, progress=progress,
                                  description=description or spec.label)
    if recorded is None:
        write_json_atomic(run_dir / SPEC_FILE, {"spec": spec.to_dict(), "steps": config.steps})
    model = trainer.raw_model
    parameters = model.parameter_count() if hasattr(model, "parameter_count") else sum(
        p.numel() for p in model.parameters())
    out_of_time = bool(config.max_time) and trainer.elapsed >= config.max_time
    if trainer.step >= config.steps or out_of_time:  # killed after its last checkpoint, before evaluation
        train_loss = next((r["loss"] for r in reversed(trainer.history) if "loss" in r), math.nan)
        return RunOutcome(run_dir, config.steps, trainer.step, train_loss, trainer.last_val, trainer.best_val,
                          trainer.elapsed, trainer.tokens, trainer.tokens / max(trainer.elapsed, 1e-9),
                          parameters, trainer.history, resumed=True)
    result = trainer.fit()
    return RunOutcome(run_dir, config.steps, result.step, result.train_loss, result.val_loss,
                      result.best_val_loss, result.elapsed, result.tokens, result.tokens_per_sec, parameters,
                      result.history, resumed=resume)


def delete_weights(run_dir: Path) -> None:
    """Drop the checkpoint files of a finished run (keeps config, tokenizers, metrics, result).

    The pointer goes first, so a run that stops halfway through this is never mistaken for one to resume.
    """
    import shutil

    from attnlab.io import is_temp_name
    from attnlab.training.run_folder import CHECKPOINTS_DIR, STATE_JSON, STATE_TENSORS

    for name in (STATE_JSON, STATE_TENSORS, "model.safetensors"):
        path = run_dir / name
        if path.is_file():
            path.unlink()
    if (run_dir / CHECKPOINTS_DIR).is_dir():
        shutil.rmtree(run_dir / CHECKPOINTS_DIR)
    for path in run_dir.iterdir() if run_dir.is_dir() else ():
        if is_temp_name(path.name) and path.is_file():
            path.unlink()
