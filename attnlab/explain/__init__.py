"""``attnlab explain TOPIC``: walk-throughs computed live, one module per family of topics.

Every module in this package defines ``TOPICS``: a dict from topic name to :class:`Topic`.
They are discovered, so a new topic never touches this file.
The ``explain`` command passes its parsed arguments (``text``, ``seed``, ``format``, ``out``,
plus whatever is common in :mod:`attnlab.cli.commands.explain`) to ``Topic.run``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    summary: str
    run: Callable[[argparse.Namespace], int | None]


# Where the known topics live, so that running one imports only its module (ELIZA needs no PyTorch).
# Topics not listed here are still found by discovery.
TOPIC_HOMES = {
    "self-attention": "attention", "causal-attention": "attention", "multi-head": "attention",
    "layer-norm": "attention", "feed-forward": "attention", "eliza": "eliza", "rnn": "recurrent",
    "lstm": "recurrent", "vanishing-gradients": "recurrent", "bahdanau": "bahdanau",
}


def get_topic(name: str) -> Topic | None:
    """The topic called ``name``, importing as little as possible; None if there is none."""
    home = TOPIC_HOMES.get(name)
    if home is not None:
        try:
            module = importlib.import_module(f"{__name__}.{home}")
        except ModuleNotFoundError:
            module = None
        if module is not None and name in getattr(module, "TOPICS", {}):
            return module.TOPICS[name]
    return all_topics().get(name)


def all_topics() -> dict[str, Topic]:
    """Every topic of every module in this package, by name."""
    found: dict[str, Topic] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.update(getattr(module, "TOPICS", {}))
    return found
