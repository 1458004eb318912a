"""What every recipe is: an options dataclass, presets, training defaults, and ``build``.

A recipe turns a kind's options (data, tokenizer, task ...) into a :class:`Setup`: the model, the
objective the trainer optimises, the files the run folder keeps (tokenizers) and how to show a
sample when training ends. The session (``attnlab.training.session``) merges the training config and
runs the trainer; the recipe never sees the command line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from attnlab.checkpoint import config_from_preset
from attnlab.options import option, options_from


@dataclass
class Setup:
    """Everything the trainer needs, built by a recipe."""

    model: Any
    objective: Any
    files: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # written once into the run
    run_info: dict[str, Any] = field(default_factory=dict)  # recorded in run.json (data size, fingerprint)
    sample: Callable[[Any], str] | None = None  # text to show when training ends
    describe_sample: Callable[[str], str] | None = None  # a line about that text (stderr)
    eval_sample: Callable[[Any], str] | None = None  # a short sample at every evaluation (--log samples)


@dataclass
class CorpusOptions:
    """Options of every kind trained on a text corpus."""

    data: str = option("julius-caesar", "corpus name (see 'attnlab corpora'), a UTF-8 text file, or a folder "
                                        "of .txt files")
    val_fraction: float = option(0.1, "share of the text held out for validation, never trained on",
                                 minimum=0.0)


class Recipe:
    """The shared part of every recipe; a family subclasses it and defines :meth:`build`.

    Class attributes a subclass sets: ``_model_class`` and ``_presets``; ``name`` (the KIND);
    ``help`` (one line); ``options_class`` (a dataclass of :func:`attnlab.options.option` fields);
    ``default_preset``; ``former_default_preset`` (the preset of a run whose run.json names none:
    runs written before the default changed, when run.json kept only what the user typed);
    ``train_defaults`` (TrainConfig fields); ``preset_training`` (training
    settings a preset brings, by preset name); ``examples`` (command lines for ``--help``); and
    ``one_thread_on_cpu`` (tiny recurrent models run faster on one thread: the session uses one
    unless the user chose).
    """

    name: str = ""
    help: str = ""
    options_class: type = CorpusOptions
    default_preset: str = ""
    former_default_preset: str = ""
    train_defaults: ClassVar[dict[str, Any]] = {}
    preset_training: ClassVar[dict[str, dict[str, Any]]] = {}
    examples: tuple[str, ...] = ()
    one_thread_on_cpu: bool = False
    _model_class: type | None = None  # set by the subclass (or its instances)
    _presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @property
    def model_class(self) -> type:
        """The model this kind trains (its ``config_class`` takes the presets and ``--set``)."""
        if self._model_class is None:
            raise NotImplementedError(f"recipe {self.name!r} names no model class")
        return self._model_class

    @property
    def presets(self) -> dict[str, dict[str, Any]]:
        """Model sizes by name: config fields."""
        return self._presets

    def options(self, **values: Any) -> Any:
        """This kind's options from keyword arguments, each checked (unknown names refused)."""
        return options_from(self.options_class, values, where=f"attnlab train {self.name}")

    def training_for(self, preset: str) -> dict[str, Any]:
        """Training defaults of this kind, then those the preset brings."""
        return {**self.train_defaults, **self.preset_training.get(preset, {})}

    def model_config(self, preset: str, overrides: dict[str, Any], **fixed: Any) -> Any:
        """The model config: preset, then the user's overrides, then what the data fixes."""
        return config_from_preset(self.model_class.config_class, self.presets, preset, self.name, overrides,
                                  **fixed)

    def build(self, options: Any, run_dir: Path, resume: bool, model_overrides: dict[str, Any],
              preset: str, seed: int) -> Setup:
        raise NotImplementedError


def text_fingerprint(text: str) -> str:
    """A short hash that tells whether a corpus changed."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def first_prompt(text: str) -> str:
    """A natural prompt for the end-of-training sample: a famous line if the corpus has it, else its start."""
    for line in ("Friends, Romans, countrymen", "To be, or not to be"):
        if line in text:
            return line
    return text.lstrip()[:16]
