"""``attnlab translate RUN TEXT...``: translate sentences with a trained translation model."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "translate", help="translate sentences with a trained translation run (bahdanau, seq2seq-*, transformer)",
        description="Translate each TEXT (or each line of standard input with '-') with a trained "
                    "encoder-decoder run and print one translation per line. Greedy by default; "
                    "--beam K keeps the K best hypotheses (length-normalised).",
        epilog="examples:\n  attnlab translate runs/bahdanau-dates-fr-en \"mercredi 9 mai 2018\"\n"
               "  attnlab translate runs/bahdanau-dates-fr-en \"mercredi 9 mai 2018\" --beam 5\n"
               "  cat dates.txt | attnlab translate runs/bahdanau-dates-fr-en -",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder written by 'attnlab train bahdanau' (or seq2seq-*, transformer)")
    p.add_argument("text", nargs="+", help="source sentence(s); '-' reads one sentence per line from stdin")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy, the default)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search ranks by log P / length**this (0 = raw log-probability; default 1)")
    p.add_argument("--max-len", type=int, default=None,
                   help="at most this many output tokens (default: the model's limit, set from its data)")
    p.add_argument("--show-source", action="store_true", help="print 'source -> translation' lines")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    p.set_defaults(func=run)


def read_texts(items: list[str]) -> list[str]:
    import sys

    texts: list[str] = []
    for item in items:
        if item == "-":
            texts.extend(line.rstrip("\n") for line in sys.stdin if line.strip())
        else:
            texts.append(item)
    return texts


def run(args: argparse.Namespace) -> int:
    from attnlab.errors import AttnlabError
    from attnlab.inference.translate import load_translator

    if args.beam < 1:
        raise AttnlabError(f"--beam must be at least 1, got {args.beam}")
    if args.max_len is not None and args.max_len < 1:
        raise AttnlabError(f"--max-len must be at least 1, got {args.max_len}")
    texts = read_texts(args.text)
    if not texts:
        raise AttnlabError("nothing to translate: give a sentence, or lines on standard input with '-'")
    translator = load_translator(args.run)
    translator.model.to(args.device)
    outputs = translator.translate(texts, beam=args.beam, max_len=args.max_len,
                                   length_penalty=args.length_penalty)
    for source, output in zip(texts, outputs):
        print(f"{source} -> {output}" if args.show_source else output)
    return 0
