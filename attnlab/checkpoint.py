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
        return config_class(**values)
    except TypeError as err:
        raise AttnlabError(f"{where}: {err}") from None


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
    finds the class from the folder)."""
    directory = Path(directory)
    model_type, values = read_model_config(directory)
    if model_type != cls.model_type:
        raise AttnlabError(f"{directory} holds a {model_type!r} model, not a {cls.__name__}")
    config = config_from_dict(cls.config_class, values, where=str(directory / CONFIG_FILE))
    model = cls(config)
    tensors = load_tensors(directory / WEIGHTS_FILE, what="model weights")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise AttnlabError(
            f"{directory / WEIGHTS_FILE} does not match its config: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise AttnlabError(
                f"{directory / WEIGHTS_FILE}: {name} has shape {tuple(tensor.shape)}, "
                f"the config expects {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors, strict=True)
    model.to(map_location)
    model.eval()
    return model


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
