"""``attnlab explain TOPIC``: a step-by-step walk-through computed live from the scratch modules.

The topics live in :mod:`attnlab.explain` (one module per family, discovered); this command
only parses its flags into an :class:`attnlab.explain.ExplainRequest`, picks the topic and lets it
print. The topic modules are imported lazily (they import PyTorch), only when this command runs
or its help is shown; :mod:`attnlab.explain` itself, which holds the defaults, is light.
"""

from __future__ import annotations

import argparse
import difflib

from attnlab.explain import DEFAULT_SEED, DEFAULT_TEXT, FORMATS, ExplainRequest

_TOPIC_LIST = "\x00topics\x00"  # replaced by the live list of topics when the help is shown


def topic_listing() -> str:
    from attnlab.explain import all_topics

    topics = all_topics()
    width = max((len(name) for name in topics), default=0)
    lines = ["topics:"]
    lines += [f"  {name.ljust(width)}  {topic.summary}" for name, topic in sorted(topics.items())]
    lines += [
        "",
        "examples:",
        "  attnlab explain self-attention                  the attention overview's example and numbers",
        '  attnlab explain causal-attention --text "a cat sat on the mat" --seed 7',
        "  attnlab explain multi-head --format markdown --out multi-head.md",
    ]
    return "\n".join(lines)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills in the list of topics only when the help is actually printed."""

    def add_text(self, text: str | None) -> None:
        super().add_text(topic_listing() if text == _TOPIC_LIST else text)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="walk through attention step by step, computed live (self-attention, layer-norm, ...)",
        description=(
            "Print a step-by-step walk-through of one idea, computed live with attnlab.scratch:\n"
            "the inputs, weight matrices, queries/keys/values, scores, weights, masks, dropout and\n"
            "outputs, with the shape at every step. With the defaults the numbers are those of the\n"
            "attention overview's worked examples.\n"
            "Run 'attnlab explain' with no topic to list the topics."
        ),
        epilog=_TOPIC_LIST,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("topic", nargs="?", metavar="TOPIC", help="what to explain (listed below)")
    parser.add_argument(
        "text",
        nargs="*",
        metavar="TEXT",
        help="free text for the walk-through, same as --text; the words may be given unquoted "
        "(attnlab explain eliza I feel sad)",
    )
    parser.add_argument(
        "--text",
        dest="text_option",
        metavar="TEXT",
        default=None,
        help=f'the text to walk through, one token per word (default: "{DEFAULT_TEXT}", the attention '
        "overview's example with its embeddings; other text gets random embeddings drawn from --seed)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"random seed for the weights and for the embeddings of your own text (default: {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="rich",
        help="rich: tables in the terminal; markdown: tables for notebooks and docs; "
        "json: a list of steps {title, explanation, shape, values} (default: rich)",
    )
    parser.add_argument(
        "--out", metavar="FILE", default=None, help="write to FILE (atomically) instead of printing"
    )
    # words after an option (attnlab explain eliza --seed 3 I feel sad) join TEXT: see attnlab.cli.main
    parser.set_defaults(func=run, trailing_words="text")


def resolve_text(positional: list[str] | str | None, option: str | None) -> str | None:
    """The text from the positional TEXT words and ``--text``; None if the user gave neither."""
    from attnlab.errors import AttnlabError

    if isinstance(positional, list | tuple):
        positional = " ".join(positional) if positional else None
    if positional is not None and option is not None and positional != option:
        raise AttnlabError("give the text once: either as TEXT after the topic or with --text, not both")
    return positional if positional is not None else option


def request_from(args: argparse.Namespace) -> ExplainRequest:
    """The :class:`ExplainRequest` that the parsed flags ask for (text and seed None when not given)."""
    from attnlab.errors import AttnlabError

    if args.seed is not None and not 0 <= args.seed <= 2**63 - 1:
        raise AttnlabError(f"--seed must be 0 or more (and at most 2**63 - 1) (got {args.seed})")
    text = resolve_text(getattr(args, "text", None), getattr(args, "text_option", None))
    return ExplainRequest(text=text, seed=args.seed, format=args.format, out=args.out)


def run(args: argparse.Namespace) -> int:
    from attnlab.errors import AttnlabError
    from attnlab.explain import all_topics, get_topic

    if args.topic is None:
        print(topic_listing())
        print("\nRun 'attnlab explain TOPIC' (options: 'attnlab explain --help').")
        return 0
    topic = get_topic(args.topic)
    if topic is None:
        topics = all_topics()
        close = difflib.get_close_matches(args.topic, list(topics), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise AttnlabError(
            f"unknown topic '{args.topic}'.{hint} Topics: {', '.join(sorted(topics))} "
            "(run 'attnlab explain' to see what each shows)"
        )
    return int(topic.run(request_from(args)) or 0)
