"""``attnlab explain TOPIC``: walk-throughs computed live, one module per family of topics.

Every topic module in this package defines ``TOPICS``: a dict from topic name to :class:`Topic`.
They are discovered, so a new topic never touches this file. A topic is run with an
:class:`ExplainRequest` (the text, the seed, the output format and file); the ``explain`` command
builds one from its flags, and a library user builds one by hand::

    from attnlab.explain import ExplainRequest, get_topic
    get_topic("self-attention").run(ExplainRequest(format="markdown"))

This module imports no PyTorch and nothing of the command line: the command reads the defaults
below while it builds its parser, and ELIZA's topic runs without PyTorch.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TEXT = "The next day is bright"
"""The attention overview's example sentence: the default text of every walk-through but ELIZA's."""

DEFAULT_SEED = 123
"""The seed of the attention overview's worked examples: with it the walk-throughs print its numbers."""

FORMATS = ("rich", "markdown", "json")
"""rich: tables in the terminal; markdown: tables for notebooks and docs; json: the steps as data."""


@dataclass(frozen=True)
class ExplainRequest:
    """What to walk through and where to show it.

    ``text``: the words to walk through; None means the topic's own example (:data:`DEFAULT_TEXT`,
    or ELIZA's sentence). ``seed``: None means not given: :data:`DEFAULT_SEED` for the topics that
    build weights, while ELIZA then cycles through its reassemblies in order instead of choosing
    at random. ``format``: one of :data:`FORMATS`. ``out``: a file to write (atomically) instead
    of printing. ``script``: ELIZA only, a script file to use instead of DOCTOR.
    """

    text: str | None = None
    seed: int | None = None
    format: str = "rich"
    out: str | None = None
    script: str | None = None

    @property
    def seed_or_default(self) -> int:
        """The seed, or :data:`DEFAULT_SEED` when none was given."""
        return DEFAULT_SEED if self.seed is None else self.seed


@dataclass(frozen=True)
class Topic:
    name: str
    summary: str
    run: Callable[[ExplainRequest], int | None]


# Where the known topics live, so that running one imports only its module (ELIZA needs no PyTorch).
# Topics not listed here are still found by discovery.
TOPIC_HOMES = {
    "self-attention": "attention", "causal-attention": "attention", "multi-head": "attention",
    "layer-norm": "blocks", "feed-forward": "blocks", "eliza": "eliza", "rnn": "recurrent",
    "lstm": "recurrent", "vanishing-gradients": "recurrent", "bahdanau": "bahdanau",
}


def get_topic(name: str) -> Topic | None:
    """The topic called ``name``, importing as little as possible; None if there is none."""
    home = TOPIC_HOMES.get(name)
    if home is not None:
        module = importlib.import_module(f"{__name__}.{home}")
        if name in getattr(module, "TOPICS", {}):
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
