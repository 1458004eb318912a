"""Screenshots of the attention viewer in headless Chromium (Playwright), for the README and tests.

:func:`screenshot` opens a viewer page, sets it up (view, tab, layer, hovered token, enlarged map)
and writes a PNG; :func:`launch` starts the browser for tests that drive the page themselves. From
a shell (the arguments are parsed in :mod:`attnlab.cli.screenshot`)::

    python -m attnlab.cli.screenshot viewer.html shot.png [--view model] [--part cross] [--layer 2]
                                     [--hover 12] [--enlarge 1,2] [--width 1200] [--height 900]

Needs the ``playwright`` Python package and a Chromium (Debian's ``chromium`` at /usr/bin/chromium by
default; ``chromium=PATH``, ``--chromium PATH``, for another). Nothing is downloaded: the page is
opened from disk.
"""

from __future__ import annotations

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
