"""``attnlab ablate``: the attention overview's GPT ablation study with a held-out validation split."""

from __future__ import annotations

import argparse
import shlex
import sys

from attnlab.cli.commands.compare import add_plan_arguments, check_plan_folders

EPILOG = """families (--families, comma-separated; default all):
  layers   1, 3, 5, 7 layers
  heads    1, 2, 4, 8 heads at the same width
  lr       peak learning rate 1e-2, 1e-3, 1e-4
  block    the full block, and without layer norm / residual connections / feed-forward

examples:
  attnlab ablate --quick                      # toy sizes, seconds
  attnlab ablate --steps 500 --out results/ablate
  attnlab ablate --steps 500 --out results/ablate    # again after a kill: continues where it stopped
The switches are GPT config fields: attnlab train gpt --set norm=none | residual=false | ffn=false"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ablate", help="the attention overview's GPT ablation study (layers, heads, learning rate, block parts)",
        description="Train GPT variants with the same steps and seed (layers 1/3/5/7, heads 1/2/4/8, "
                    "learning rate 1e-2/1e-3/1e-4, block without layer norm / residual / feed-forward), "
                    "measure each on held-out text, and write a table and one overlay loss plot per family. "
                    "Resumable.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps for every variant (default 500)")
    p.add_argument("--quick", action="store_true", help="a tiny GPT for a few steps: checks the pipeline")
    p.add_argument("--preset", default=None, help="GPT preset of the base model (default gpt-jc)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change the base model, e.g. --set n_embd=64 --set context_length=64 (every variant "
                        "inherits it)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step (default 16)")
    p.add_argument("--families", default=None, help="comma-separated subset: layers, heads, lr, block")
    p.add_argument("--data", default="julius-caesar", help="corpus (default julius-caesar)")
    add_plan_arguments(p, "ablate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.experiments.ablate import AblateConfig, run_ablate
    from attnlab.training.session import parse_sets

    check_plan_folders(args)
    command = " ".join(["attnlab", *map(shlex.quote, sys.argv[1:])])
    values = dict(command=command, out=args.out, runs=args.runs, data=args.data, seed=args.seed,
                  fresh=args.fresh,
                  keep_weights=not args.delete_weights, progress=not args.quiet)
    if args.threads is not None:  # quick mode defaults to 1: toy models only lose from a second thread
        values["threads"] = args.threads
    if args.steps is not None:
        values["steps"] = args.steps
    if args.families:
        values["families"] = tuple(f.strip() for f in args.families.split(",") if f.strip())
    if args.preset:
        values["preset"] = args.preset
    defaults = AblateConfig.quick_config() if args.quick else AblateConfig()
    sets = parse_sets(args.set)
    if sets:
        values["base"] = {**defaults.base, **sets}
    if args.batch_size is not None:
        values["train"] = {**defaults.train, "batch_size": args.batch_size}
    config = AblateConfig.quick_config(**values) if args.quick else AblateConfig(**values)
    run_ablate(config)
    print(f"results in {config.out / 'results.md'} (run folders in {config.runs})", file=sys.stderr)
    print((config.out / "results.md").read_text(encoding="utf-8"))
    return 0
