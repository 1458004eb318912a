"""``attnlab prepare``: tokenize a corpus once into token shards that training maps from disk."""

from __future__ import annotations

import argparse

from attnlab.cli.help import DefaultsHelpFormatter

EPILOG = """examples:
  attnlab prepare shakespeare --out data/shakespeare-char
  attnlab prepare big.txt --tokenizer bpe --vocab-size 4096 --out data/big-bpe
  attnlab prepare my_texts/ --out data/mine                 # every .txt file below my_texts/
  attnlab prepare docs.parquet --text-column body --tokenizer bpe --out data/docs
then train on it: attnlab train gpt --data data/shakespeare-char"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare", help="tokenize a corpus once into token shards (for corpora bigger than memory)",
        description="Read SOURCE as a stream (never whole), tokenize it on every core and write token shards, "
                    "meta.json and tokenizer.json into --out. The held-out split is the last --val-fraction of "
                    "documents (files of a folder, rows of a table) or of the text, in shards of its own. The "
                    "folder appears only when it is complete.",
        epilog=EPILOG, formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("source", help="a built-in corpus name (see 'attnlab corpora'), a UTF-8 text file, a folder "
                                       "of .txt files, or a .jsonl / .parquet / .arrow file")
    parser.add_argument("--tokenizer", choices=("char", "bpe"), default="char",
                        help="char: one token per character; bpe: byte-level BPE trained on the training split")
    parser.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size (default 1024)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="share held out for validation, never trained on")
    parser.add_argument("--text-column", default="text", help="the column with the text in a .jsonl/.parquet/.arrow")
    parser.add_argument("--out", required=True, help="the folder to write (it must not exist, see --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it is a prepared folder")
    parser.add_argument("--bpe-sample", type=int, default=None, metavar="CHARS",
                        help="train BPE on about this many characters of the training split (default 20,000,000; "
                             "a smaller source is used whole)")
    parser.add_argument("--shard-tokens", type=int, default=None, metavar="N",
                        help="tokens per shard file (default 268,435,456)")
    parser.add_argument("--workers", type=int, default=None, help="threads for tokenizing (default: one per core)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.data.prepare import prepare
    from attnlab.errors import AttnlabError

    options = {}
    if args.bpe_sample is not None:
        options["bpe_sample_chars"] = args.bpe_sample
    if args.shard_tokens is not None:
        if args.shard_tokens < 1:
            raise AttnlabError(f"--shard-tokens must be at least 1, got {args.shard_tokens}")
        options["shard_tokens"] = args.shard_tokens
    if args.workers is not None:
        if args.workers < 1:
            raise AttnlabError(f"--workers must be at least 1, got {args.workers}")
        options["workers"] = args.workers
    meta = prepare(args.source, args.out, args.tokenizer, args.vocab_size, args.val_fraction,
                   text_column=args.text_column, overwrite=args.overwrite, progress=not args.quiet, **options)
    tokens, seconds = meta["tokens"], meta["seconds"]["total"]
    size = meta["source"]["size"]
    split = ("the last documents" if meta["split"]["by"] == "documents" else "the tail of the text")
    print(f"prepared {args.source}: {tokens['train']:,} training and {tokens['val']:,} validation tokens "
          f"({meta['tokenizer']['kind']}, {meta['tokenizer']['vocab_size']:,} ids, {meta['dtype']}; validation = "
          f"{split}) in {seconds:.1f} s ({size / max(seconds, 1e-9) / 1e6:.1f} MB/s)")
    print(f"wrote {args.out}; train on it with: attnlab train gpt --data {args.out}")
    return 0
