"""What ``attnlab train KIND`` builds: a model, its objective and its tokenizers, from CLI options.

``RECIPES`` maps each KIND to ``"module:object"``; the object has ``name``, ``help``,
``default_preset``, ``presets``, ``model_class``, ``add_arguments(parser)`` and
``build(args, run_dir, resume) -> Setup``. :class:`LanguageModelRecipe` serves every language model
(GPT here, the recurrent LMs in :mod:`attnlab.models.recurrent`): text -> tokenizer -> token ids ->
random windows.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

RECIPES: dict[str, str] = {
    "gpt": "attnlab.training.recipes:GPT_RECIPE",
    "rnn": "attnlab.models.recurrent:RNN_RECIPE",
    "lstm": "attnlab.models.recurrent:LSTM_RECIPE",
    "gru": "attnlab.models.recurrent:GRU_RECIPE",
    "bahdanau": "attnlab.models.seq2seq:BAHDANAU_RECIPE",
    "seq2seq-rnn": "attnlab.models.seq2seq:SEQ2SEQ_RNN_RECIPE",
    "seq2seq-lstm": "attnlab.models.seq2seq:SEQ2SEQ_LSTM_RECIPE",
    "seq2seq-gru": "attnlab.models.seq2seq:SEQ2SEQ_GRU_RECIPE",
    "transformer": "attnlab.models.transformer:TRANSFORMER_RECIPE",
    "encoder": "attnlab.models.transformer:ENCODER_RECIPE",
}


def get_recipe(kind: str) -> Any:
    if kind not in RECIPES:
        raise AttnlabError(f"unknown model kind {kind!r}; choose one of {', '.join(RECIPES)}")
    module_name, _, attr = RECIPES[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("attnlab"):
            raise AttnlabError(f"'attnlab train {kind}' is not available in this version") from None
        raise
    return getattr(module, attr)


@dataclass
class Setup:
    """Everything the trainer needs, built by a recipe."""

    model: Any
    objective: Any
    train_defaults: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Callable[[Path], None]] = field(default_factory=dict)
    run_info: dict[str, Any] = field(default_factory=dict)
    sample: Callable[[Any], str] | None = None  # text to show when training ends


def parse_value(text: str) -> Any:
    """``--set`` values: true/false, none, int, float, else the string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AttnlabError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def split_overrides(sets: dict[str, Any], model_config_class: type, train_config_class: type
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send each ``--set`` key to the model config or the training config; unknown keys are an error."""
    model_fields = {f.name for f in dataclasses.fields(model_config_class)}
    train_fields = {f.name for f in dataclasses.fields(train_config_class)}
    model_part, train_part = {}, {}
    for key, value in sets.items():
        if key in model_fields:
            model_part[key] = value
        elif key in train_fields:
            train_part[key] = value
        else:
            raise AttnlabError(
                f"--set {key}: no such setting. Model fields: {', '.join(sorted(model_fields))}. "
                f"Training fields: {', '.join(sorted(train_fields))}"
            )
    return model_part, train_part


def text_fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data`` and ``--val-fraction``: every kind trained on a text corpus takes them."""
    parser.add_argument("--data", default="julius-caesar",
                        help="corpus name (see 'attnlab corpora'), a UTF-8 text file, or a folder of .txt files "
                             "(default: julius-caesar)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="share of the text held out for validation, never trained on (default 0.1)")


class LanguageModelRecipe:
    """Train a language model on a corpus: the shared shape of ``attnlab train gpt|rnn|lstm|gru``."""

    tokenizer_file = "tokenizer.json"

    def __init__(self, name: str, help: str, model_class_path: str, presets_path: str, default_preset: str,
                 train_defaults: dict[str, Any]) -> None:
        self.name, self.help = name, help
        self._model_class_path, self._presets_path = model_class_path, presets_path
        self.default_preset = default_preset
        self.train_defaults = train_defaults

    @staticmethod
    def _resolve(path: str) -> Any:
        module_name, _, attr = path.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    @property
    def model_class(self) -> type:
        return self._resolve(self._model_class_path)

    @property
    def presets(self) -> dict[str, dict[str, Any]]:
        return self._resolve(self._presets_path)

    def preset_training(self, preset: str) -> dict[str, Any]:
        """Training settings a preset brings (``PRESET_TRAINING`` beside ``PRESETS``, if the module has it)."""
        module_name = self._presets_path.partition(":")[0]
        return dict(getattr(importlib.import_module(module_name), "PRESET_TRAINING", {}).get(preset, {}))

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_corpus_arguments(parser)
        parser.add_argument("--tokenizer", choices=("char", "bpe"), default="char",
                            help="char: one token per character; bpe: byte-level BPE trained on the corpus")
        parser.add_argument("--vocab-size", type=int, default=None,
                            help="BPE vocabulary size (default 1024)")

    def make_config(self, preset: str, overrides: dict[str, Any], vocab_size: int) -> Any:
        from attnlab.checkpoint import config_from_preset

        return config_from_preset(self.model_class.config_class, self.presets, preset, self.name, overrides,
                                  vocab_size=vocab_size)

    def build(self, args: argparse.Namespace, run_dir: Path, resume: bool, model_overrides: dict[str, Any],
              seed: int) -> Setup:
        import torch

        from attnlab.data.corpora import load_corpus, split_train_val
        from attnlab.data.tokenizers import load_tokenizer, make_tokenizer

        text = load_corpus(args.data)
        train_text, val_text = split_train_val(text, args.val_fraction)
        if resume:
            tokenizer = load_tokenizer(run_dir / self.tokenizer_file)
        elif args.tokenizer == "char":
            tokenizer = make_tokenizer("char", text)  # every character of the corpus has an id
        else:
            tokenizer = make_tokenizer("bpe", train_text, vocab_size=args.vocab_size)  # merges from train only
        train_ids = torch.tensor(tokenizer.encode(train_text), dtype=torch.long)
        val_ids = torch.tensor(tokenizer.encode(val_text), dtype=torch.long)
        preset = args.preset or self.default_preset
        config = self.make_config(preset, model_overrides, tokenizer.vocab_size)
        model = self.model_class(config)
        context = getattr(config, "context_length", None) or getattr(config, "bptt", None) or 128
        objective = self.make_objective(model, train_ids, val_ids, context, seed)
        prompt = first_prompt(text)

        def sample(trained: Any) -> str:
            from attnlab.inference.sampling import SamplingConfig, generate_text

            return prompt + generate_text(trained, tokenizer, prompt,
                                          SamplingConfig(max_new_tokens=400, temperature=0.8, seed=seed))

        return Setup(
            model=model, objective=objective, train_defaults={**self.train_defaults, **self.preset_training(preset)},
            files={self.tokenizer_file: tokenizer.save},
            run_info={"data": args.data, "data_fingerprint": text_fingerprint(text), "tokenizer": args.tokenizer,
                      "vocab_size": args.vocab_size, "val_fraction": args.val_fraction,
                      "train_tokens": len(train_ids), "val_tokens": len(val_ids)},
            sample=sample,
        )

    def make_objective(self, model: Any, train_ids: Any, val_ids: Any, context: int, seed: int) -> Any:
        from attnlab.data.batching import LanguageModelObjective

        return LanguageModelObjective(train_ids, val_ids, context, seed=seed)


def first_prompt(text: str) -> str:
    """A natural prompt for the end-of-training sample: a famous line if the corpus has it, else its start."""
    for line in ("Friends, Romans, countrymen", "To be, or not to be"):
        if line in text:
            return line
    return text.lstrip()[:16]


GPT_RECIPE = LanguageModelRecipe(
    name="gpt",
    help="a decoder-only GPT language model (2018) on a text corpus",
    model_class_path="attnlab.models.gpt:GPT",
    presets_path="attnlab.models.gpt:PRESETS",
    default_preset="gpt-jc",
    train_defaults=dict(steps=2000, batch_size=16, lr=1e-3, warmup_steps=100, eval_every=250, eval_iters=20,
                        ckpt_every=250, beta2=0.99, weight_decay=0.1),
)
