"""``python -m attnlab.cli.screenshot viewer.html shot.png [...]``: a PNG of the attention viewer.

A developer's tool (the README's pictures), not an ``attnlab`` command: it parses its arguments
and calls :func:`attnlab.viz.browser.screenshot`, which opens the page in headless Chromium. Errors
the user can cause (no Playwright or Chromium, a bad ``--enlarge``) are one ``attnlab: error:`` line, exit 2.
"""

from __future__ import annotations

import argparse
import sys

from attnlab.errors import AttnlabError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m attnlab.cli.screenshot",
        description="Screenshot the attnlab attention viewer in headless Chromium.",
    )
    p.add_argument("html", help="the viewer page (attnlab attention RUN --text TEXT --out viewer.html)")
    p.add_argument("out", help="the PNG to write")
    p.add_argument("--view", choices=["head", "model"], default="head")
    p.add_argument("--part", default=None, help="tab to open (encoder, decoder, cross)")
    p.add_argument("--layer", type=int, default=None, help="head view: layer index")
    p.add_argument("--hover", type=int, default=None, help="head view: hover this query token (index)")
    p.add_argument("--enlarge", default=None, help="model view: LAYER,HEAD (indices) to click open")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--chromium", default=None, help="the Chromium to drive (default: /usr/bin/chromium)")
    return p


def parse_enlarge(value: str | None) -> tuple[int, int] | None:
    """``"1,2"`` -> ``(1, 2)``; None stays None."""
    if not value:
        return None
    try:
        layer, head = (int(v) for v in value.split(","))
    except ValueError:
        raise AttnlabError(f"--enlarge takes LAYER,HEAD, two indices such as 1,2 (got {value!r})") from None
    return layer, head


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from attnlab.viz.browser import screenshot

    try:
        try:
            import playwright.sync_api  # noqa: F401
        except ModuleNotFoundError:
            raise AttnlabError("the screenshots need the playwright package: pip install playwright") from None
        errors = screenshot(args.html, args.out, view=args.view, part=args.part, layer=args.layer,
                            hover=args.hover, enlarge=parse_enlarge(args.enlarge), width=args.width,
                            height=args.height, chromium=args.chromium)
    except AttnlabError as err:
        print(f"attnlab: error: {err}", file=sys.stderr)
        sys.exit(2)
    for error in errors:
        print(f"console error: {error}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
