"""``attnlab compare``: every era on the same data under the same wall-clock budget."""

from __future__ import annotations

import argparse
import shlex
import sys

EPILOG = """models (--models, comma-separated; default all):
  language modelling (Julius Caesar, characters): rnn, lstm, gru, gpt
  translation (dates, mixed source lengths k=1,2,4,8): seq2seq-rnn, seq2seq-lstm, seq2seq-gru,
      bahdanau-rnn, bahdanau-lstm, bahdanau-gru, transformer
  ELIZA (1966) is always in the table as the rule-based baseline.

examples:
  attnlab compare --quick                       # toy sizes, a minute or two
  attnlab compare --budget 2 --out results/compare
  attnlab compare --budget 2 --out results/compare   # again after a kill: finished runs are skipped,
                                                     # the interrupted one resumes from its checkpoint
  attnlab compare --models lstm,gpt,bahdanau-gru,transformer --task dates-de-en"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="train every model under the same time budget and tabulate the results",
        description="Train RNN, LSTM, GRU and GPT language models and RNN/LSTM/GRU encoder-decoders with and "
                    "without Bahdanau attention and a Transformer under the same wall-clock budget; write a "
                    "results folder (results.md, results.json, plots). Resumable.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=2.0, metavar="MINUTES",
                   help="training time per model, in minutes of optimizer steps (default 2)")
    p.add_argument("--steps", type=int, default=None,
                   help="instead of a time budget, the same number of optimizer steps for every model")
    p.add_argument("--quick", action="store_true",
                   help="toy sizes and a dozen steps per model: checks the whole pipeline in a minute or two")
    p.add_argument("--models", default=None, help="comma-separated subset of the models (see below)")
    p.add_argument("--data", default="julius-caesar",
                   help="corpus of the language models (default julius-caesar)")
    p.add_argument("--task", default="dates-fr-en",
                   help="date translation task dates-<src>-<tgt> (default dates-fr-en)")
    p.add_argument("--pairs-per-k", type=int, default=None,
                   help="distinct pairs generated for each source length k (default 4000; quick 40)")
    p.add_argument("--tokenizer", choices=("word", "char"), default="word",
                   help="translation tokens (default word); the language models always use characters")
    add_plan_arguments(p, "compare")
    p.set_defaults(func=run)


def add_plan_arguments(p: argparse.ArgumentParser, name: str) -> None:
    """The options every resumable plan of runs shares (compare, ablate)."""
    p.add_argument("--out", default=f"results/{name}", help=f"results folder (default results/{name})")
    p.add_argument("--runs", default=None,
                   help="where the run folders (checkpoints) go (default OUT/runs); keep it to resume")
    p.add_argument("--seed", type=int, default=1337, help="seed for weights, batches, dropout and samples")
    p.add_argument("--fresh", action="store_true", help="retrain every run, ignoring finished ones")
    p.add_argument("--delete-weights", action="store_true",
                   help="delete each run's weights once it is evaluated (keeps metrics and result.json)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; on a busy shared machine 1 is often "
                        "much faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def check_plan_folders(args: argparse.Namespace) -> None:
    """--out and --runs must be folders (or not exist yet): checked before hours of training, not after."""
    from attnlab.outputs import check_output_folder

    check_output_folder(args.out, "--out")
    if args.runs is not None:
        check_output_folder(args.runs, "--runs")


def run(args: argparse.Namespace) -> int:
    from attnlab.experiments.compare import CompareConfig, run_compare

    check_plan_folders(args)
    command = " ".join(["attnlab", *map(shlex.quote, sys.argv[1:])])
    values = dict(command=command, out=args.out, runs=args.runs, budget_min=args.budget, steps=args.steps,
                  data=args.data,
                  task=args.task, tokenizer=args.tokenizer, seed=args.seed, fresh=args.fresh,
                  keep_weights=not args.delete_weights, progress=not args.quiet)
    if args.threads is not None:  # quick mode defaults to 1: toy models only lose from a second thread
        values["threads"] = args.threads
    if args.models:
        values["models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if args.pairs_per_k is not None:
        values["pairs_per_k"] = args.pairs_per_k
    if args.quick:
        if args.steps is None:
            values.pop("steps")
        config = CompareConfig.quick_config(**values)
    else:
        config = CompareConfig(**values)
    run_compare(config)
    print(f"results in {config.out / 'results.md'} (run folders in {config.runs})", file=sys.stderr)
    print((config.out / "results.md").read_text(encoding="utf-8"))
    return 0
