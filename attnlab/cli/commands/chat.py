"""``attnlab chat TARGET``: talk to ELIZA (1966) or to a trained model, in the same chat loop."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="talk to ELIZA (1966) or to a trained language model in a chat loop",
        description=(
            "Chat with TARGET. 'eliza' is Weizenbaum's 1966 ELIZA running attnlab's own DOCTOR-style\n"
            "script (or yours, with --script); anything else is the folder of a trained run, whose model\n"
            "continues the conversation as text. Type quit, bye or exit (or press Ctrl-D) to end.\n"
            "Lines piped on standard input are answered one by one."
        ),
        epilog=(
            "examples:\n"
            "  attnlab chat eliza\n"
            "  attnlab chat eliza --script my_script.txt --transcript session.txt\n"
            "  echo 'I remember my first bicycle' | attnlab chat eliza\n"
            "  attnlab chat runs/gpt-shakespeare --temperature 0.7 --top-k 40"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="TARGET", help="'eliza', or the folder of a trained run")
    parser.add_argument(
        "--script",
        metavar="FILE",
        default=None,
        help="ELIZA only: a script file (plain text, .yaml/.yml or .json; format: docs/eliza-script.md) "
        "instead of the built-in DOCTOR script",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="ELIZA: pick replies at random from this seed instead of cycling through them in order; "
        "trained run: the sampling seed",
    )
    parser.add_argument(
        "--transcript", metavar="FILE", default=None, help="write the conversation to FILE when it ends"
    )
    parser.add_argument(
        "--temperature", type=float, default=None, metavar="T", help="trained run: sampling temperature (> 0)"
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        metavar="K",
        help="trained run: sample among the K likeliest tokens",
    )
    parser.add_argument(
        "--top-p",
        type=float,
        default=None,
        metavar="P",
        help="trained run: sample among the likeliest tokens whose probabilities add up to P (nucleus sampling)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        metavar="N",
        help="trained run: the longest reply, in tokens",
    )
    parser.add_argument("--device", default=None, help="trained run: cpu, cuda, cuda:N, mps or auto (default cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.chat import printable, run_chat
    from attnlab.outputs import check_output_file

    if args.transcript is not None:  # before the conversation, not after it
        check_output_file(args.transcript, "--transcript", create_folders=True)
    if args.target.lower() == "eliza":
        responder, name = _eliza(args), "eliza"
    else:
        responder, name = _trained(args), None
    interactive = sys.stdin.isatty()
    if interactive:
        print("(type quit, bye or exit to end the conversation)")
    run_chat(
        responder,
        transcript=args.transcript,
        input_fn=_terminal_input if interactive else _piped_input,
        output_fn=lambda line: print(line, flush=True),
        name=name,
    )
    if args.transcript:
        print(printable(f"(transcript written to {args.transcript})"), file=sys.stderr)
    return 0


def _eliza(args: argparse.Namespace):
    from attnlab.eliza import Eliza

    ignored = [flag for flag, value in _sampling_options(args).items() if value is not None]
    if ignored:
        flags = ", ".join(ignored)
        print(f"attnlab: note: ELIZA ignores {flags} (sampling options of trained runs)", file=sys.stderr)
    if args.script:
        return Eliza.from_file(args.script, seed=args.seed)
    return Eliza(seed=args.seed)


def _trained(args: argparse.Namespace):
    from pathlib import Path

    from attnlab.errors import AttnlabError

    if args.script:
        raise AttnlabError("--script is for 'attnlab chat eliza'; a trained run has no script")
    if not Path(args.target).exists():
        raise AttnlabError(
            f"{args.target!r} is neither 'eliza' nor an existing run folder; "
            "train one first (attnlab train ...) or chat with 'eliza'"
        )
    options = _sampling_options(args)
    if options["--temperature"] is not None and not options["--temperature"] > 0:
        raise AttnlabError(f"--temperature must be above 0 (got {options['--temperature']})")
    for flag in ("--top-k", "--max-new-tokens"):
        if options[flag] is not None and options[flag] < 1:
            raise AttnlabError(f"{flag} must be 1 or more (got {options[flag]})")
    from attnlab.inference.chat import load_responder
    from attnlab.inference.sampling import SamplingConfig

    given = {key.lstrip("-").replace("-", "_"): value for key, value in options.items() if value is not None}
    SamplingConfig(seed=args.seed, **given)  # every sampling flag checked before the run is loaded
    if args.device is not None:
        given["device"] = args.device
    return load_responder(args.target, seed=args.seed, **given)


def _sampling_options(args: argparse.Namespace) -> dict[str, float | int | None]:
    return {
        "--temperature": args.temperature,
        "--top-k": args.top_k,
        "--top-p": args.top_p,
        "--max-new-tokens": args.max_new_tokens,
    }


def _terminal_input(prompt: str) -> str:
    try:
        return input(prompt)
    except (EOFError, KeyboardInterrupt):
        print()  # leave the shell prompt on a line of its own
        raise EOFError from None


def _piped_input(prompt: str) -> str:
    """A line from piped input (bad UTF-8 replaced), echoed (made printable) so that the output
    reads as a conversation."""
    from attnlab.chat import printable

    stream = getattr(sys.stdin, "buffer", None)
    raw = stream.readline() if stream is not None else sys.stdin.readline()
    if not raw:
        raise EOFError
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    line = raw.rstrip("\r\n")
    if line.strip():
        print(printable(f"{prompt}{line}"), flush=True)
    return line
