"""Trainer state on disk: checkpoints that are published whole or not at all.

A checkpoint is everything a run needs to continue exactly: the weights and model config, the
optimizer state (nested state dicts flattened into ``optim.<index>.<name>`` tensors, the non-tensor
parts in JSON), the RNG states, the objective's tensors (e.g. carried RNN states), the step and the
counters, and the length ``metrics.jsonl`` had at that step. No pickle is involved, so a checkpoint
from anywhere can be loaded safely. The layout (rank 0 alone writes it)::

    RUN/trainer_state.json          names the published checkpoint (and repeats its JSON state)
    RUN/checkpoints/step-000250/    the published checkpoint, complete: model.safetensors,
                                    config.json, trainer_state.safetensors, trainer_state.json
    RUN/config.json, RUN/model.safetensors
                                    the published model, for generate/chat/attention/convert
                                    (a hard link to the checkpoint's weights where the disk allows)

A save (:func:`write_checkpoint`) writes every file into a fresh hidden folder
``checkpoints/.tmp-step-000260-<random>/`` (each file fsynced), renames it to
``checkpoints/step-000260`` (then fsyncs ``checkpoints/``) and publishes it by atomically replacing
``trainer_state.json`` (fsynced, and its folder). Only then are the top-level model files updated
and the previous checkpoint removed. A process killed at any instant leaves ``trainer_state.json``
naming a complete checkpoint; what a killed save leaves behind (a temporary or unpublished folder,
temporary files) is removed at the next start (:func:`remove_leftovers`), and resume reads only
the published checkpoint (:func:`read_checkpoint`). Any ``OSError`` while saving (a full disk)
becomes one :class:`AttnlabError` (:func:`write_failed`) and leaves the previous checkpoint as it was.

Runs written before this layout hold ``trainer_state.json`` + ``trainer_state.safetensors`` at the
top, next to ``model.safetensors``; they resume as they are, and their next save moves them to it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attnlab.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_tensors, save_model, save_tensors, tensors_metadata
from attnlab.errors import AttnlabError
from attnlab.io import (
    fsync_dir,
    fsync_file,
    is_temp_name,
    link_or_copy_atomic,
    read_json,
    remove_temp_files,
    write_atomic,
    write_json_atomic,
)
from attnlab.training.run_folder import CHECKPOINTS_DIR, STATE_JSON, STATE_TENSORS

FOLDER_NAME = re.compile(r"step-\d{6,}(-\d+)?")  # a checkpoint folder in checkpoints/
TEMP_PREFIX = ".tmp-step-"  # a save in progress: checkpoints/.tmp-step-000260-<random>/


# ---- optimizer and RNG state as tensors + JSON ----------------------------------------------------

def flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith("optim."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    return out


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    if "rng.cpu" not in tensors:
        raise AttnlabError("trainer state has no RNG state; the checkpoint is incomplete")
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


# ---- reading --------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """The published checkpoint of a run, read back."""

    folder: Path  # checkpoints/step-N (the run folder itself in the older layout)
    meta: dict[str, Any]  # its trainer_state.json
    weights: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor]  # optimizer, RNG, objective
    legacy: bool  # the older layout (state at the top of the run folder)

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def run_is_resumable(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint to resume (either layout; :func:`read_checkpoint` checks it)."""
    run_dir = Path(run_dir)
    return (run_dir / STATE_JSON).is_file() and (
        (run_dir / CHECKPOINTS_DIR).is_dir() or (run_dir / STATE_TENSORS).is_file())


def _corrupt(path: Path, why: str) -> AttnlabError:
    return AttnlabError(f"{path} {why}; the file is corrupt or the run folder was changed by hand, so the run "
                        "cannot resume")


def _pointer(run_dir: Path) -> dict[str, Any]:
    meta = read_json(run_dir / STATE_JSON, what="trainer state")
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise _corrupt(run_dir / STATE_JSON, "is not an attnlab trainer state")
    return meta


def _published_name(run_dir: Path, pointer: Mapping[str, Any]) -> str | None:
    """The folder in checkpoints/ that ``pointer`` names; None for the older layout."""
    named = pointer.get("checkpoint")
    if named is None:
        return None
    parts = named.split("/") if isinstance(named, str) else []
    if len(parts) != 2 or parts[0] != CHECKPOINTS_DIR or not FOLDER_NAME.fullmatch(parts[1]):
        raise _corrupt(run_dir / STATE_JSON, f"names no checkpoint folder ({named!r})")
    return parts[1]


def read_checkpoint(run_dir: str | Path) -> Checkpoint:
    """The checkpoint ``trainer_state.json`` names (or the older layout's), every part checked."""
    run_dir = Path(run_dir)
    pointer = _pointer(run_dir)
    name = _published_name(run_dir, pointer)
    if name is None:
        folder, meta = run_dir, pointer
    else:
        folder = run_dir / CHECKPOINTS_DIR / name
        if not folder.is_dir():
            raise _corrupt(run_dir / STATE_JSON, f"names the checkpoint {CHECKPOINTS_DIR}/{name}, which is missing")
        meta = read_json(folder / STATE_JSON, what="trainer state")
        if not isinstance(meta, dict) or meta.get("step") != pointer["step"]:
            raise _corrupt(folder / STATE_JSON, f"is not the state of step {pointer['step']} that "
                                                f"{run_dir / STATE_JSON} names")
    if not isinstance(meta.get("optimizer"), dict):
        raise _corrupt(folder / STATE_JSON, "has no optimizer section")
    tensors = load_tensors(folder / STATE_TENSORS, what="trainer state")
    weights = load_tensors(folder / WEIGHTS_FILE, what="model weights")
    saved_step = tensors_metadata(folder / WEIGHTS_FILE).get("step")
    if saved_step is not None and saved_step != str(meta["step"]):
        raise AttnlabError(
            f"the checkpoint in {folder} is inconsistent: its weights are from step {saved_step} but its "
            f"trainer state is from step {meta['step']} (the run was killed while saving); retrain or copy "
            "model.safetensors from a backup"
        )
    return Checkpoint(folder, meta, weights, tensors, legacy=name is None)


# ---- writing --------------------------------------------------------------------------------------


def write_failed(err: OSError, path: str | Path, run_dir: str | Path, complete_step: int | None) -> AttnlabError:
    """The one error for a failed write in a run folder: which file, and what is still intact."""
    full = err.errno in (errno.ENOSPC, errno.EDQUOT)
    what = (f"the disk is full: could not write {path} (no space left on device)" if full
            else f"could not write {path}: {err.strerror or err}")
    fix = "free some space" if full else "fix that"
    if complete_step is None:
        then = f"this run has no complete checkpoint yet: {fix} and start it again (with --overwrite)"
    else:
        then = (f"the last complete checkpoint (step {complete_step}) in {run_dir} is intact: {fix} and continue "
                f"the run with --resume {run_dir}")
    return AttnlabError(f"{what}; {then}")


def metrics_length(path: Path) -> int:
    """The length of ``metrics.jsonl``, flushed to the disk first (0 if there is none yet)."""
    if not path.is_file():
        return 0
    fsync_file(path)
    return path.stat().st_size


def cut_metrics(path: Path, length: int) -> None:
    """Cut ``metrics.jsonl`` back to ``length`` bytes: the rows logged after the checkpoint go."""
    if path.is_file() and path.stat().st_size > length:
        os.truncate(path, length)


def _discard(path: Path | None) -> None:
    if path is None or not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _free_folder(checkpoints: Path, step: int) -> Path:
    """``checkpoints/step-000260``, or ``step-000260-2`` while a checkpoint of that step is still there."""
    name, n = f"step-{step:06d}", 2
    while os.path.lexists(checkpoints / name):
        name, n = f"step-{step:06d}-{n}", n + 1
    return checkpoints / name


def _names(run_dir: Path, name: str) -> bool:
    """Whether the trainer_state.json on disk names ``checkpoints/NAME``."""
    try:
        return _published_name(run_dir, _pointer(run_dir)) == name
    except AttnlabError:
        return False


def publish_model_files(run_dir: Path, folder: Path) -> None:
    """Make the run folder's ``model.safetensors`` and ``config.json`` those of checkpoint ``folder``."""
    weights = run_dir / WEIGHTS_FILE
    if not (weights.is_file() and os.path.samefile(weights, folder / WEIGHTS_FILE)):
        link_or_copy_atomic(folder / WEIGHTS_FILE, weights)
    config = run_dir / CONFIG_FILE
    if not (config.is_file() and config.read_bytes() == (folder / CONFIG_FILE).read_bytes()):
        write_atomic(config, lambda tmp: shutil.copyfile(folder / CONFIG_FILE, tmp))


def write_checkpoint(run_dir: str | Path, *, step: int, model: Any, weights: dict[str, torch.Tensor],
                     tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                     files: Mapping[str, Callable[[Path], None]], metrics: Path,
                     complete_step: int | None) -> str:
    """Write the checkpoint of ``step`` and publish it; returns its folder's name in ``checkpoints/``.

    ``files`` are written at the top of the run folder when absent (tokenizers, run.json); ``meta``
    is the JSON state (the length of ``metrics`` is added to it); ``complete_step`` is the step of
    the checkpoint already published (None if none), named if the save fails. An ``OSError`` becomes
    :func:`write_failed`'s error, after the half-written checkpoint is removed.
    """
    run_dir = Path(run_dir)
    checkpoints = run_dir / CHECKPOINTS_DIR
    target: Path = run_dir
    temp = final = None
    published = False
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, write in files.items():
            target = run_dir / name
            if not target.exists():
                write(target)
        target = metrics
        meta = {**meta, "metrics_offset": metrics_length(metrics)}
        target = checkpoints
        checkpoints.mkdir(exist_ok=True)
        temp = checkpoints / f"{TEMP_PREFIX}{step:06d}-{secrets.token_hex(4)}"
        temp.mkdir()
        final = _free_folder(checkpoints, step)
        target = final / WEIGHTS_FILE
        save_model(model, temp, state=weights, metadata={"step": str(step)})
        target = final / STATE_TENSORS
        save_tensors(temp / STATE_TENSORS, tensors)
        target = final / STATE_JSON
        write_json_atomic(temp / STATE_JSON, meta)
        target = final
        os.rename(temp, final)
        temp = None
        fsync_dir(checkpoints)
        target = run_dir / STATE_JSON  # the publishing step: one atomic rename
        write_json_atomic(target, {**meta, "checkpoint": f"{CHECKPOINTS_DIR}/{final.name}"})
        published = True
        target = run_dir / WEIGHTS_FILE
        publish_model_files(run_dir, final)
        target = checkpoints
        remove_leftovers(run_dir)
    except BaseException as err:
        _discard(temp)
        if final is not None and not published:
            published = _names(run_dir, final.name)  # the rename may have happened before the error
            if not published:
                _discard(final)
        if isinstance(err, OSError):
            raise write_failed(err, target, run_dir, step if published else complete_step) from None
        raise
    return final.name


def remove_leftovers(run_dir: str | Path) -> list[str]:
    """Remove what an interrupted save leaves; returns what was removed (paths in the run folder).

    That is: the temporary files of the atomic writer at the top of the run folder, every folder in
    ``checkpoints/`` but the published one (temporary, unpublished or superseded), and, once a
    checkpoint of this layout is published, the older layout's ``trainer_state.safetensors``. With an
    unreadable ``trainer_state.json``, or one naming a missing folder, no checkpoint folder is touched.
    """
    run_dir = Path(run_dir)
    removed = remove_temp_files(run_dir)
    try:
        keep = _published_name(run_dir, _pointer(run_dir)) if (run_dir / STATE_JSON).is_file() else None
    except AttnlabError:
        return removed
    checkpoints = run_dir / CHECKPOINTS_DIR
    if keep is not None and not (checkpoints / keep).is_dir():  # it names nothing: keep everything
        return removed
    if checkpoints.is_dir():
        for child in sorted(checkpoints.iterdir()):
            ours = FOLDER_NAME.fullmatch(child.name) or child.name.startswith(TEMP_PREFIX) or is_temp_name(child.name)
            if child.name != keep and ours:
                _discard(child)
                removed.append(f"{CHECKPOINTS_DIR}/{child.name}")
    if keep is not None and (run_dir / STATE_TENSORS).is_file():
        _discard(run_dir / STATE_TENSORS)
        removed.append(STATE_TENSORS)
    return removed
