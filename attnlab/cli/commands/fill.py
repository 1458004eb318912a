"""``attnlab fill RUN "Friends, [MASK], countrymen"``: an encoder run's best guesses for masked words."""

from __future__ import annotations

import argparse

from attnlab.cli.help import DefaultsHelpFormatter


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fill",
        help="guess the [MASK]ed words of a text with a trained encoder (BERT-like) run",
        description="Print the most likely tokens for every [MASK] in TEXT, with their probabilities, "
        "and the text filled with the best guesses. Needs a run of 'attnlab train encoder'.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("run", help="run folder of an encoder model, e.g. runs/encoder-julius-caesar")
    p.add_argument("text", help='text with one or more [MASK], e.g. "Friends, [MASK], countrymen"')
    p.add_argument("--top", type=int, default=5, help="how many guesses to show per [MASK]")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.errors import AttnlabError
    from attnlab.inference.fill import MASK, fill_masks
    from attnlab.runs import load_run

    loaded = load_run(args.run, device=args.device)
    if loaded.model.model_type != "encoder":
        raise AttnlabError(f"{args.run} holds a {loaded.model.model_type!r} model; fill needs an encoder run "
                           "(attnlab train encoder)")
    guesses = fill_masks(loaded.model, loaded.tokenizer, args.text, top_k=args.top)
    filled = args.text
    for n, row in enumerate(guesses, start=1):
        label = f"[MASK] {n}" if len(guesses) > 1 else "[MASK]"
        print(f"{label}:")
        for token, prob in row:
            print(f"  {token.strip() or repr(token):<20} {prob:.3f}")
        best = row[0][0]
        before, _, after = filled.partition(MASK)
        if loaded.tokenizer.kind == "word" and before.endswith(" ") and best.startswith(" "):
            before = before[:-1]
        filled = before + best + after
    print(filled)
    return 0
