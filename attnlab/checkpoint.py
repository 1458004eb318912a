"""Saving and loading models as directories: ``config.json`` + ``model.safetensors``.

No pickle is ever loaded: weights are safetensors, everything else is JSON. Every file is written
by :func:`attnlab.io.write_atomic` (temporary file, fsync, rename), so a crash never leaves half a file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from attnlab import io as fileio
from attnlab.errors import AttnlabError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MAX_CONFIG_BYTES = 1 << 20  # a model config is a few hundred bytes


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (tensors are made contiguous and unshared first)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    clean = {k: v.detach().contiguous().clone() for k, v in tensors.items()}

    def write(tmp: str) -> None:
        try:
            save_file(clean, tmp, metadata=metadata)
        except SafetensorError as err:  # an I/O error (a full disk) is an OSError like any other write's
            code = re.search(r"os error (\d+)", str(err))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), tmp) from None

    fileio.write_atomic(path, write)


def tensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata in a safetensors header ({} if none or unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # an unreadable file is reported by load_tensors
        return {}


def load_tensors(path: str | Path, what: str = "weights file") -> dict:
    """Read a safetensors file; a missing, truncated or foreign file raises :class:`AttnlabError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"{what} not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise AttnlabError(
            f"{what} {path} is not a readable safetensors file ({err}); it is truncated or corrupt"
        ) from None


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def rename_fields(config_class: type, values: dict[str, Any]) -> dict[str, Any]:
    """Map the field names of older attnlab versions to today's (``config_class.renamed_fields``).

    ``renamed_fields`` maps an old name to its new name, or to None for a field that is gone (its
    value is dropped). Saved runs, presets and ``--set`` keys written before a rename keep working.
    """
    renamed = getattr(config_class, "renamed_fields", {})
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in renamed:
            if renamed[key] is not None and renamed[key] not in values:
                out[renamed[key]] = value
        else:
            out[key] = value
    return out


def config_from_dict(config_class: type, values: dict[str, Any], where: str = "config") -> Any:
    """Build a config dataclass, rejecting unknown keys with a message that lists the valid ones.

    Old field names are mapped first (:func:`rename_fields`).
    """
    values = rename_fields(config_class, values)
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise AttnlabError(f"{where}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(names))}")
    try:
        config = config_class(**values)
    except TypeError as err:
        raise AttnlabError(f"{where}: {err}") from None
    from attnlab.memory import check_planned

    check_planned(config)  # while a run is being built (attnlab.memory.planned_training): will it fit?
    return config


def config_from_preset(config_class: type, presets: dict[str, dict[str, Any]], name: str, kind: str,
                       overrides: dict[str, Any] | None = None, **fixed: Any) -> Any:
    """``config_class`` from preset ``name``, then ``overrides`` (the user's), then ``fixed`` (set by the data).

    An unknown preset or field, or a bad value, is one :class:`AttnlabError` that names ``kind``.
    """
    if name not in presets:
        raise AttnlabError(f"unknown preset {name!r} for {kind}; choose one of {', '.join(presets)}")
    overrides = rename_fields(config_class, overrides or {})  # an old name must still beat the preset
    return config_from_dict(config_class, {**presets[name], **overrides, **fixed}, where=f"{kind} config")


def save_model(model: Any, directory: str | Path, state: dict | None = None,
               metadata: dict[str, str] | None = None) -> None:
    """Write ``config.json`` (model type + config fields) and ``model.safetensors``.

    ``state`` replaces ``model.state_dict()`` (weights gathered from a sharded model);
    ``metadata`` is stored in the safetensors header (the trainer records its step there).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    header = {"format": "pt", "model_type": model.model_type, **(metadata or {})}
    save_tensors(directory / WEIGHTS_FILE, model.state_dict() if state is None else state, metadata=header)
    fileio.write_json_atomic(
        directory / CONFIG_FILE,
        {"model_type": model.model_type, "format": "attnlab", "config": config_to_dict(model.config)},
    )


def read_model_config(directory: str | Path) -> tuple[str, dict[str, Any]]:
    """Return ``(model_type, config dict)`` of a saved model directory, validating the layout."""
    directory = Path(directory)
    check_file_size(directory / CONFIG_FILE, MAX_CONFIG_BYTES, "a model config")
    if not directory.is_dir():
        raise AttnlabError(f"{directory} is not a directory; expected a run or model folder")
    meta = fileio.read_json(directory / CONFIG_FILE, what="model config")
    if not isinstance(meta, dict) or meta.get("format") != "attnlab" or "model_type" not in meta:
        hint = ""
        if isinstance(meta, dict) and meta.get("model_type") == "gpt2":
            hint = " It looks like a Hugging Face GPT-2 folder: run 'attnlab convert SRC DST --to attnlab' first."
        raise AttnlabError(f"{directory / CONFIG_FILE} is not an attnlab model config.{hint}")
    if not isinstance(meta.get("config"), dict):
        raise AttnlabError(f"{directory / CONFIG_FILE} has no 'config' section; the file is corrupt")
    return meta["model_type"], meta["config"]


def load_model_as(cls: type, directory: str | Path, map_location: str = "cpu") -> Any:
    """Rebuild a model of class ``cls`` saved by :func:`save_model`; refuses anything that is not exactly
    that layout, or a folder that holds another kind of model (``attnlab.models.registry.load_model``
    finds the class from the folder).

    Every value is checked before it is used: the config (absurd sizes, and whether the model fits in
    memory: :mod:`attnlab.memory`) before the model is built, the weights file's header (names and
    shapes) before its data is read, and the weights themselves (no NaN or infinity) before they are
    loaded.
    """
    import math

    from attnlab.devices import resolve_device
    from attnlab.memory import check_load

    directory = Path(directory)
    device = resolve_device(map_location)
    model_type, values = read_model_config(directory)
    if model_type != cls.model_type:
        raise AttnlabError(f"{directory} holds a {model_type!r} model, not a {cls.__name__}")
    try:
        config = config_from_dict(cls.config_class, values, where=str(directory / CONFIG_FILE))
    except AttnlabError as err:  # a value the config refuses: say which file holds it
        message = str(err)
        raise AttnlabError(message if str(directory) in message else f"{directory / CONFIG_FILE}: {message}") from None
    weights = directory / WEIGHTS_FILE
    estimate = check_load(cls, config, f"the {model_type} model in {directory / CONFIG_FILE}", device, weights)
    header = tensor_shapes(weights, what="model weights")
    held = sum(math.prod(shape) for shape in header.values())
    if held < estimate.parameters:  # refused before a model of the config's size is built
        raise AttnlabError(f"{weights} holds {held:,} weights, fewer than the {estimate.parameters:,} parameters "
                           f"of {directory / CONFIG_FILE}: the two files do not belong together")
    model = cls(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing or extra:
        raise AttnlabError(
            f"{weights} does not match its config: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for name, shape in header.items():
        if shape != tuple(expected[name].shape):
            raise AttnlabError(
                f"{weights}: {name} has shape {shape}, the config expects {tuple(expected[name].shape)}"
            )
    tensors = load_tensors(weights, what="model weights")
    check_finite(tensors, weights)
    model.load_state_dict(tensors, strict=True)
    model.to(device)
    model.eval()
    return model


def tensor_shapes(path: str | Path, what: str = "weights file") -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of a safetensors file, read from its header alone (no tensor data is read)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise AttnlabError(
            f"{what} {path} is not a readable safetensors file ({err}); it is truncated or corrupt"
        ) from None


def check_finite(tensors: dict, path: str | Path) -> None:
    """Refuse weights that hold NaN or infinity (a diverged or damaged run), naming the first such tensor."""
    import torch

    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise AttnlabError(
                f"{path}: tensor {name} holds {bad:,} non-finite value{'s' if bad != 1 else ''} (NaN or "
                "infinity); these weights are damaged (or come from a run that diverged) and cannot be used"
            )


def check_file_size(path: str | Path, limit: int, what: str) -> None:
    """Refuse a file far larger than ``what`` ever is, before it is read (it is not what it claims to be)."""
    path = Path(path)
    try:
        size = path.stat().st_size if path.is_file() else 0
    except OSError:
        return  # unreadable: the reader says so
    if size > limit:
        raise AttnlabError(f"{path} is {size:,} bytes, far more than {what} ever is (at most {limit:,}); "
                           "it is not an attnlab file")


class Savable:
    """``save(directory)`` / ``Model.load(directory)`` for every attnlab model.

    A model class lists this before ``nn.Module`` and defines ``model_type`` and ``config_class``;
    ``load`` refuses a folder that holds another kind of model.
    """

    def save(self, directory: str | Path) -> None:
        save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path, map_location: str = "cpu") -> Any:
        return load_model_as(cls, directory, map_location)
