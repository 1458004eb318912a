"""``attnlab convert SRC DST --to hf|attnlab``: GPT runs to and from Hugging Face GPT-2 folders."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a GPT between attnlab and Hugging Face GPT-2 formats",
        description="Convert a GPT model folder. --to hf writes a GPT2LMHeadModel folder (config.json + "
                    "model.safetensors) with the run's char or bpe tokenizer (tokenizer.json + "
                    "tokenizer_config.json), so that transformers' AutoTokenizer and pipeline('text-generation', "
                    "model=DST) work offline; only GPTs with GPT-2's architecture convert (not gpt-speedrun). "
                    "--to attnlab reads such a folder (e.g. downloaded GPT-2 weights) into an attnlab model "
                    "folder.")
    p.add_argument("src", help="source folder")
    p.add_argument("dst", help="destination folder (created; must be empty or absent)")
    p.add_argument("--to", required=True, choices=("hf", "attnlab"), help="target format")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from attnlab.errors import AttnlabError
    from attnlab.inference.hf_export import export_run, import_folder
    from attnlab.outputs import check_output_folder

    src, dst = Path(args.src), check_output_folder(args.dst, "DST")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise AttnlabError(f"{dst} exists and is not empty; choose a new destination")
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        written = (export_run if args.to == "hf" else import_folder)(src, staging)
        if dst.exists():
            dst.rmdir()
        staging.rename(dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote {dst} ({args.to} format, {written})")
    return 0
