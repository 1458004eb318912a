"""The studio's pages in a real browser (headless Chromium driven by Playwright).

The chat page streams a reply from a tiny trained run and from ELIZA; the inside page draws the
attention grid and the next-token bars, which move with the temperature slider; typed markup shows
as text and never runs; the runs page draws a loss curve. Screenshots of each page are written to
docs/images/serve-*.png for the README. Skipped when Chromium or Playwright is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import attnlab
from attnlab.viz.browser import find_chromium, launch

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
pytest.importorskip("fastapi", reason="attnlab serve needs fastapi")
if find_chromium() is None:
    pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium); the studio test needs it",
                allow_module_level=True)

from attnlab.serve import BackgroundServer  # noqa: E402

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
TINY = dict(preset="gpt-nano", steps=6, batch_size=4, quiet=True, no_sample=True,
            set={"context_length": 32, "eval_every": 3, "eval_iters": 1})
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studio")
    corpus = folder / "corpus.txt"
    corpus.write_text(("friends romans countrymen lend me your ears " + " ".join(HOSTILE) + "\n\n") * 60,
                      encoding="utf-8")
    attnlab.train("gpt", data=str(corpus), out=str(folder / "runs" / "tiny"), **TINY)
    with BackgroundServer([folder / "runs"]) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1200, "height": 800}, device_scale_factor=1)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    base = url.rsplit("/", 1)[0]
    page.on("request", lambda r: None if r.url.startswith((base, "data:", "about:"))
            else problems.append(f"network request: {r.url}"))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    return page, problems


def say(page, text):
    page.fill("#input", text)
    page.click("#send")
    page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length > 0 && "
                           "[...document.querySelectorAll('.msg.assistant')].every(m => m.dataset.done === '1')")


def test_chat_streams_from_eliza_and_a_trained_run_side_by_side(browser, server):
    page, problems = open_page(browser, f"{server}/chat")
    say(page, "I remember my first bicycle")
    assert page.inner_text("#pane-main .msg.assistant") == attnlab.eliza.Eliza().reply("I remember my first bicycle")
    page.select_option("#model", "tiny")
    page.check("#side-by-side")
    say(page, "friends romans")
    assert page.locator("#pane-main .msg.assistant").count() == 1
    assert page.inner_text("#pane-main .msg.assistant").strip()
    assert page.inner_text("#pane-eliza .msg.assistant").strip()
    page.click("#regenerate")
    page.wait_for_function("() => [...document.querySelectorAll('.msg.assistant')].every(m => m.dataset.done === '1')")
    assert page.locator("#pane-main .msg.assistant").count() == 1  # replaced, not added
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "serve-chat.png"))
    page.click("#clear")
    assert page.locator(".msg").count() == 0
    assert problems == []


def test_typed_markup_shows_as_text_and_never_runs(browser, server):
    page, problems = open_page(browser, f"{server}/chat")
    for text in HOSTILE:
        say(page, text)
        assert page.locator(".msg.user").last.inner_text() == text
    assert page.locator(".msg img, .messages script").count() == 0
    page, more = open_page(browser, f"{server}/inside?run=tiny")
    page.wait_for_selector("#bars .bar-track")
    page.fill("#text", HOSTILE[1])
    page.click("#look")
    page.wait_for_function("() => document.body.dataset.busy === ''")
    assert page.locator("#tokens img").count() == 0 and "<" in page.inner_text("#tokens")
    page.wait_for_timeout(300)
    assert problems == [] and more == []  # no alert, no dialog, no error


def bar_values(page):
    return [float(v) for v in page.eval_on_selector_all("#bars .bar-track", "els => els.map(e => e.dataset.p)")]


def test_inside_page_draws_attention_and_next_token_bars(browser, server):
    page, problems = open_page(browser, f"{server}/inside?run=tiny")
    page.wait_for_selector("#bars .bar-track")
    page.fill("#text", "friends romans")
    page.click("#look")
    page.wait_for_function("() => document.body.dataset.busy === ''")
    assert page.locator("#tokens .tok").all_inner_texts()[:2] == ["f", "r"]  # char by char
    frame = page.frame_locator("#viewer")
    frame.locator("#view-tabs button[data-view=model]").click()
    assert frame.locator(".thumb").count() == 9  # gpt-nano: 3 layers x 3 heads
    before = bar_values(page)
    page.locator("#temperature").fill("2")
    page.wait_for_function("() => document.querySelector('#bars').dataset.temperature === '2'")
    after = bar_values(page)
    assert len(before) == len(after) and before != after and max(after) < max(before)  # flatter when hotter
    page.locator("#top-k").fill("3")
    assert len(bar_values(page)) == 3 and abs(sum(bar_values(page)) - 1) < 1e-3
    text = page.input_value("#text")
    page.locator("#bars .bar-label").first.click()
    page.wait_for_function(f"() => document.querySelector('#text').value.length === {len(text) + 1}")
    page.wait_for_function("() => document.body.dataset.busy === ''")
    page.screenshot(path=str(IMAGES / "serve-inside.png"), full_page=True)
    assert problems == []


def test_runs_page_lists_runs_with_a_loss_curve(browser, server):
    page, problems = open_page(browser, f"{server}/runs")
    row = page.locator("tr[data-run='tiny']")
    assert "gpt" in row.inner_text() and row.get_attribute("data-steps") == "6"
    assert int(row.locator("svg.curve").get_attribute("data-points")) > 2
    page.screenshot(path=str(IMAGES / "serve-runs.png"))
    assert problems == []
