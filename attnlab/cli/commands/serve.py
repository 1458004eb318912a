"""``attnlab serve [RUNS_DIR or RUN ...]``: the studio in the browser and an OpenAI-compatible API."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="a local studio in the browser (chat, inside a model, runs) and an OpenAI-compatible API",
        description=(
            "Serve the runs under each FOLDER (a run folder or a folder of runs; default runs/) on one local\n"
            "web server: a chat page (ELIZA and any language-model run, side by side), an inside page\n"
            "(tokens, every layer's and head's attention, the next-token distribution, translations and\n"
            "their alignment), a runs page (loss curves, live while a run trains), and an OpenAI-compatible\n"
            "API at /v1 (models, completions, chat completions, streaming). Ctrl+C stops it."
        ),
        epilog=(
            "examples:\n"
            "  attnlab serve                       # the runs under runs/, on http://127.0.0.1:8000/\n"
            "  attnlab serve runs/gpt-shakespeare --port 8080\n"
            "  python -c \"import openai; c = openai.OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='-');\n"
            "    print(c.chat.completions.create(model='eliza', messages=[{'role': 'user', 'content': 'hi'}]))\""
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="run folders or folders of runs (default runs/)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; the server has no login)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 picks a free one)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps or auto (default cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.serve.server import check_port, check_sources, serve

    sources = check_sources(args.folders)  # before importing the web stack: a typo is told at once
    check_port(args.port)
    serve(sources, host=args.host, port=args.port, device=args.device or "cpu",
          announce=lambda line: print(line, flush=True))
    return 0
