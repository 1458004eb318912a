"""How to train each family of models: one module per family, one options dataclass per kind.

``RECIPES`` maps each ``attnlab train KIND`` to the module and object that trains it. The module is
imported only when its kind is asked for (a GPT run never imports the translation code).
"""

from __future__ import annotations

import importlib
from typing import Any

from attnlab.errors import AttnlabError

RECIPES: dict[str, tuple[str, str]] = {
    "gpt": ("attnlab.recipes.lm", "GPT_RECIPE"),
    "rnn": ("attnlab.recipes.lm", "RNN_RECIPE"),
    "lstm": ("attnlab.recipes.lm", "LSTM_RECIPE"),
    "gru": ("attnlab.recipes.lm", "GRU_RECIPE"),
    "bahdanau": ("attnlab.recipes.translation", "BAHDANAU_RECIPE"),
    "seq2seq-rnn": ("attnlab.recipes.translation", "SEQ2SEQ_RNN_RECIPE"),
    "seq2seq-lstm": ("attnlab.recipes.translation", "SEQ2SEQ_LSTM_RECIPE"),
    "seq2seq-gru": ("attnlab.recipes.translation", "SEQ2SEQ_GRU_RECIPE"),
    "transformer": ("attnlab.recipes.translation", "TRANSFORMER_RECIPE"),
    "encoder": ("attnlab.recipes.masked_lm", "ENCODER_RECIPE"),
}


def get_recipe(kind: str) -> Any:
    """The recipe of ``attnlab train KIND``; an unknown kind is one clear error."""
    if kind not in RECIPES:
        raise AttnlabError(f"unknown model kind {kind!r}; choose one of {', '.join(RECIPES)}")
    module_name, attr = RECIPES[kind]
    return getattr(importlib.import_module(module_name), attr)
