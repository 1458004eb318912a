"""``attnlab train KIND``: train a model and write a run folder."""

from __future__ import annotations

import argparse
import sys

from attnlab.cli.help import DefaultsHelpFormatter

KINDS_HELP = """model kinds:
  gpt            decoder-only GPT language model (2018) - the main job
  rnn, lstm, gru recurrent language models (1980s, 1997)
  bahdanau       RNN encoder-decoder with additive attention (2014), on translation tasks
  seq2seq-rnn, seq2seq-lstm, seq2seq-gru   encoder-decoders without attention
  transformer    the 2017 encoder-decoder Transformer, on translation tasks
  encoder        encoder-only Transformer with a masked-token objective (what BERT is)

examples:
  attnlab train gpt                                  # Julius Caesar, about 5 minutes on 2 CPU cores
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


def kind_parser(kind: str, recipe) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"attnlab train {kind}", description=recipe.help,
                                formatter_class=DefaultsHelpFormatter)
    recipe.add_arguments(p)
    presets = ", ".join(recipe.presets)
    p.add_argument("--preset", default=None, help=f"model size: {presets} (default {recipe.default_preset})")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the kind's own)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per optimizer step (global)")
    p.add_argument("--grad-accum", type=int, default=None, help="micro-steps per optimizer step")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--out", default=None, help="run folder (default: runs/<kind>-<data>, numbered if taken)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN",
                   help="continue the run in RUN (or in --out) from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--seed", type=int, default=1337, help="seed for weights, batches and dropout")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice, one per core); on a machine "
                        "busy with other jobs, 1 is often much faster")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                   help="bfloat16 = autocast (GPU); default float32")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--optimizer", choices=("adamw", "muon"), default=None, help="default adamw")
    p.add_argument("--fsdp", action="store_true", help="under torchrun: FullyShardedDataParallel instead of DDP")
    p.add_argument("--max-time", type=float, default=None, help="stop after this many seconds of training")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any model or training config field, e.g. --set n_layer=6 --set dropout=0.2")
    p.add_argument("--no-sample", action="store_true", help="do not print a sample at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from attnlab.training.recipes import get_recipe
    from attnlab.training.run import train_from_cli

    recipe = get_recipe(args.kind)
    options = kind_parser(args.kind, recipe).parse_args(args.options)
    options.kind = args.kind
    result = train_from_cli(recipe, options)
    return 0 if result is not None else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace(kind=sys.argv[1], options=sys.argv[2:])))
