"""``attnlab convert SRC DST --to hf|attnlab``: GPT checkpoints to and from Hugging Face GPT-2 format."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a GPT between attnlab and Hugging Face GPT-2 formats",
        description="Convert a GPT model folder. --to hf writes a GPT2LMHeadModel folder (config.json + "
                    "model.safetensors) that transformers.GPT2LMHeadModel.from_pretrained loads; --to attnlab "
                    "reads such a folder (e.g. downloaded GPT-2 weights) into an attnlab model folder.")
    p.add_argument("src", help="source folder")
    p.add_argument("dst", help="destination folder (created; must be empty or absent)")
    p.add_argument("--to", required=True, choices=("hf", "attnlab"), help="target format")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from attnlab.checkpoint import save_model
    from attnlab.errors import AttnlabError
    from attnlab.models.hf_gpt2 import copy_tokenizer, from_hf, to_hf
    from attnlab.models.registry import load_model

    src, dst = Path(args.src), Path(args.dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise AttnlabError(f"{dst} exists and is not empty; choose a new destination")
    if args.to == "hf":
        model = load_model(src)
        if model.model_type != "gpt":
            raise AttnlabError(f"only GPT models convert to GPT-2 format; {src} holds a {model.model_type!r}")
    else:
        model = from_hf(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        (to_hf if args.to == "hf" else save_model)(model, staging)
        copied = copy_tokenizer(src, staging)
        if dst.exists():
            dst.rmdir()
        staging.rename(dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote {dst} ({args.to} format, {model.parameter_count() / 1e6:.2f}M parameters"
          + (", tokenizer.json copied" if copied else "") + ")")
    return 0
