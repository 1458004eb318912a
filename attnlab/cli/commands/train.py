"""``attnlab train KIND``: train a model and write a run folder.

The flags of each kind come from its recipe's options dataclass and from the session's
:class:`~attnlab.training.session.RunOptions`: one definition serves the command line and Python.
"""

from __future__ import annotations

import argparse

from attnlab.cli.flags import add_option_flags, given

KINDS_HELP = """model kinds:
  gpt            decoder-only GPT language model (2018) - the main job
  rnn, lstm, gru recurrent language models (1980s, 1997)
  bahdanau       RNN encoder-decoder with additive attention (2014), on translation tasks
  seq2seq-rnn, seq2seq-lstm, seq2seq-gru   encoder-decoders without attention
  transformer    the 2017 encoder-decoder Transformer, on translation tasks
  encoder        encoder-only Transformer with a masked-token objective (what BERT is)

examples:
  attnlab train gpt                                  # Julius Caesar, the main job
  attnlab train gpt --data my.txt --tokenizer bpe --vocab-size 2000
  attnlab train gpt --preset gpt-mini --set dropout=0.2 --steps 5000
  attnlab train gpt --resume runs/gpt-julius-caesar  # continue a killed or finished run
Run 'attnlab train KIND --help' for the options of one kind."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model (gpt, rnn, lstm, gru, bahdanau, transformer, ...)",
        description="Train a model and write a run folder (config.json, model.safetensors, tokenizer, "
                    "metrics.jsonl, loss.png, trainer state for --resume).",
        epilog=KINDS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=True,
    )
    parser.add_argument("kind", help="what to train (see the list below)")
    parser.add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


HELP_VOCABULARY = 65  # parameter counts in --help assume a character vocabulary of this size


def preset_size(recipe, name: str) -> str:
    """``0.82M parameters``: a preset's size for a 65-token vocabulary, counted without allocating."""
    import dataclasses

    from attnlab.checkpoint import config_from_preset
    from attnlab.errors import AttnlabError
    from attnlab.memory import count_parameters, format_count

    fields = {f.name for f in dataclasses.fields(recipe.model_class.config_class)}
    vocab = {k: HELP_VOCABULARY for k in ("vocab_size", "src_vocab_size", "tgt_vocab_size") if k in fields}
    try:
        config = config_from_preset(recipe.model_class.config_class, recipe.presets, name, recipe.name, vocab)
        return f"{format_count(count_parameters(recipe.model_class, config)[0])} parameters; "
    except (AttnlabError, TypeError, ValueError):
        return ""


def preset_lines(recipe) -> str:
    """One line per preset: its name, size and shape, the kind's default marked."""
    lines = []
    for name, values in recipe.presets.items():
        shape = ", ".join(f"{k}={v}" for k, v in values.items() if not k.endswith("vocab_size"))
        trains = ", ".join(f"{k}={v}" for k, v in recipe.preset_training.get(name, {}).items())
        lines.append(f"  {name:<14}{preset_size(recipe, name)}{shape}"
                     + (f"; trains with {trains}" if trains else "")
                     + ("   (default)" if name == recipe.default_preset else ""))
    return "\n".join(lines)


def kind_parser(kind: str, recipe) -> argparse.ArgumentParser:
    from attnlab.training.session import RunOptions

    train = recipe.training_for(recipe.default_preset)
    epilog = (f"presets (sizes for a {HELP_VOCABULARY}-character vocabulary):\n{preset_lines(recipe)}"
              f"\n\ntraining defaults of '{kind}': " + ", ".join(
        f"{k}={v}" for k, v in train.items()))
    if recipe.examples:
        epilog += "\n\nexamples:\n" + "\n".join(f"  {line}" for line in recipe.examples)
    from attnlab.cli.help import Parser

    p = Parser(prog=f"attnlab train {kind}", description=recipe.help, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=None)
    data = p.add_argument_group(f"{kind} options")
    add_option_flags(data, recipe.options_class)
    run = p.add_argument_group("run options")
    shown = {k: train[k] for k in ("steps", "batch_size", "lr", "optimizer") if k in train}
    shown.setdefault("optimizer", "adamw")
    shown["preset"] = recipe.default_preset
    add_option_flags(run, RunOptions, skip=("resume",), shown=shown)
    run.add_argument("--resume", nargs="?", const=True, default=argparse.SUPPRESS, metavar="RUN",
                     help="continue the run in RUN (or in --out) from its last checkpoint; its own settings "
                          "are kept (more --steps extends it)")
    return p


def run(args: argparse.Namespace) -> int:
    from attnlab.recipes import get_recipe
    from attnlab.training.session import RunOptions, start_run

    recipe = get_recipe(args.kind)
    parsed = kind_parser(args.kind, recipe).parse_args(args.options)
    resume = vars(parsed).pop("resume", None)
    run_values = given(parsed, RunOptions)
    if resume is not None:
        run_values["resume"] = True
        if isinstance(resume, str):
            run_values["out"] = resume
    start_run(recipe, given(parsed, recipe.options_class), run_values)
    return 0


def kind_first(argv: list[str]) -> list[str]:
    """``attnlab train --config FILE ...`` names no kind: read it from the file and put it first."""
    if len(argv) < 2 or argv[0] != "train" or not argv[1].startswith("--config"):
        return argv
    from attnlab.training.session import kind_of_config

    path = argv[1].partition("=")[2] or (argv[2] if len(argv) > 2 else "")
    if not path:
        return argv  # the kind parser reports the missing value
    return ["train", kind_of_config(path), *argv[1:]]
