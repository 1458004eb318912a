"""Where each saved ``model_type`` lives, so that :func:`load_model` can rebuild any saved model.

Values are ``"module:ClassName"`` strings, imported only when a checkpoint of that type is loaded.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from attnlab.checkpoint import load_model_as, read_model_config
from attnlab.errors import AttnlabError

MODEL_TYPES: dict[str, str] = {
    "gpt": "attnlab.models.gpt:GPT",
    "rnn_lm": "attnlab.models.recurrent:RNNLM",
    "lstm_lm": "attnlab.models.recurrent:LSTMLM",
    "gru_lm": "attnlab.models.recurrent:GRULM",
    "seq2seq": "attnlab.models.seq2seq:Seq2Seq",
    "transformer": "attnlab.models.transformer:Transformer",
    "encoder": "attnlab.models.encoder:EncoderLM",
}


def model_class(model_type: str) -> type:
    """The class of a saved ``model_type``; an unknown type is one clear error."""
    if model_type not in MODEL_TYPES:
        raise AttnlabError(f"unknown model_type {model_type!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    module_name, _, class_name = MODEL_TYPES[model_type].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_model(directory: str | Path, map_location: str = "cpu") -> Any:
    """Rebuild whatever model a folder holds (``config.json`` names its type)."""
    model_type, _ = read_model_config(directory)
    return load_model_as(model_class(model_type), directory, map_location)
