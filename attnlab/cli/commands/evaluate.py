"""``attnlab evaluate RUN``: exact match, character error rate and BLEU of a translation run."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a translation run on its held-out test split (exact match, CER, BLEU)",
        description="Translate every pair of a split of the run's own task (rebuilt from run.json; the "
                    "test split is never trained on) and print exact-match accuracy, character error "
                    "rate and corpus BLEU (sacrebleu). Works for bahdanau, seq2seq-* and transformer runs.",
        epilog="examples:\n  attnlab evaluate runs/bahdanau-dates-fr-en\n"
               "  attnlab evaluate runs/bahdanau-dates-fr-en --beam 5 --split val --show 5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder written by 'attnlab train bahdanau' (or seq2seq-*, transformer)")
    p.add_argument("--split", choices=("test", "val", "train"), default="test",
                   help="which split (default test)")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy, the default)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search ranks by log P / length**this (default 1)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N pairs of the split")
    p.add_argument("--batch-size", type=int, default=256, help="sentences decoded at once")
    p.add_argument("--show", type=int, default=3, help="print up to N wrong translations (default 3)")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from attnlab.errors import AttnlabError
    from attnlab.evaluation import translation_metrics
    from attnlab.inference.translate import load_translator
    from attnlab.io import read_json
    from attnlab.recipes.translation import load_run_task

    if args.beam < 1:
        raise AttnlabError(f"--beam must be at least 1, got {args.beam}")
    if args.limit is not None and args.limit < 1:
        raise AttnlabError(f"--limit must be at least 1, got {args.limit}")
    if args.batch_size < 1:
        raise AttnlabError(f"--batch-size must be at least 1, got {args.batch_size}")
    run_dir = Path(args.run)
    translator = load_translator(run_dir)
    translator.model.to(args.device)
    info = read_json(run_dir / "run.json", what="run description")
    data = load_run_task(info)
    pairs = data.split(args.split)[: args.limit]
    start = time.perf_counter()
    hyps = translator.translate([s for s, _ in pairs], beam=args.beam, batch_size=args.batch_size,
                                length_penalty=args.length_penalty)
    seconds = time.perf_counter() - start
    refs = [t for _, t in pairs]
    scores = translation_metrics(hyps, refs)
    scores.update(split=args.split, beam=args.beam, task=data.name, seconds=round(seconds, 2))
    if args.json:
        print(json.dumps(scores))
        return 0
    decoding = "greedy" if args.beam == 1 else f"beam {args.beam}"
    print(f"{run_dir} on {data.name} {args.split} ({scores['n']} pairs, {decoding}, {seconds:.1f} s):")
    print(f"  exact match  {scores['exact_match']:.2%}")
    print(f"  CER          {scores['cer']:.2%}")
    print(f"  BLEU         {scores['bleu']:.2f}")
    wrong = [(s, h, t) for (s, t), h in zip(pairs, hyps) if h != t][: max(args.show, 0)]
    for source, hyp, ref in wrong:
        print(f"  x {source!r} -> {hyp!r} (reference {ref!r})")
    return 0
