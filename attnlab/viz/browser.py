"""Screenshots of the attention viewer in headless Chromium (Playwright), for the README and tests.

    python -m attnlab.viz.browser viewer.html shot.png [--view model] [--part cross] [--layer 2]
                                  [--hover 12] [--enlarge 1,2] [--width 1200] [--height 900]

Needs the ``playwright`` Python package and a Chromium (Debian's ``chromium`` at /usr/bin/chromium by
default; ``--chromium PATH`` for another). Nothing is downloaded: the page is opened from disk.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def find_chromium(path: str | None = None) -> str | None:
    """The Chromium to drive: ``path``, /usr/bin/chromium, or ``chromium`` on the PATH; None if absent."""
    for candidate in (path, CHROMIUM, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def launch(playwright: Any, chromium: str | None = None) -> Any:
    """A headless Chromium browser (the caller closes it)."""
    executable = find_chromium(chromium)
    if executable is None:
        raise AttnlabError("no Chromium found at /usr/bin/chromium; install it (apt-get install chromium) "
                           "or pass --chromium PATH")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def screenshot(html: str | Path, out: str | Path, *, view: str = "head", part: str | None = None,
               layer: int | None = None, hover: int | None = None, enlarge: tuple[int, int] | None = None,
               width: int = 1200, height: int = 900, chromium: str | None = None) -> list[str]:
    """Open ``html``, set it up as asked and write a PNG of the viewport; returns the console errors."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw, chromium)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(Path(html).resolve().as_uri())
            if part is not None:
                page.click(f"#part-tabs button:text-is('{part}')")
            page.click(f"#view-tabs button[data-view={view}]")
            if layer is not None and view == "head":
                page.select_option("#layer-select", str(layer))
            if hover is not None and view == "head":
                page.hover(f"#query-tokens .tok >> nth={hover}")
            if enlarge is not None and view == "model":
                page.click(f".thumb[data-layer='{enlarge[0]}'][data-head='{enlarge[1]}']")
            page.screenshot(path=str(out))
        finally:
            browser.close()
    return errors


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Screenshot the attnlab attention viewer in headless Chromium.")
    p.add_argument("html")
    p.add_argument("out")
    p.add_argument("--view", choices=["head", "model"], default="head")
    p.add_argument("--part", default=None, help="tab to open (encoder, decoder, cross)")
    p.add_argument("--layer", type=int, default=None, help="head view: layer index")
    p.add_argument("--hover", type=int, default=None, help="head view: hover this query token (index)")
    p.add_argument("--enlarge", default=None, help="model view: LAYER,HEAD (indices) to click open")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--chromium", default=None)
    args = p.parse_args(argv)
    enlarge = tuple(int(v) for v in args.enlarge.split(",")) if args.enlarge else None
    errors = screenshot(args.html, args.out, view=args.view, part=args.part, layer=args.layer,
                        hover=args.hover, enlarge=enlarge, width=args.width, height=args.height,
                        chromium=args.chromium)
    for error in errors:
        print(f"console error: {error}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
