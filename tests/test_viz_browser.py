"""The HTML attention viewer in a real browser: headless Chromium driven by Playwright.

Checks that hovering a token focuses its lines, clicking a head's colour hides that head, the model
view opens an enlarged map, encoder-decoder runs get encoder / decoder / cross tabs, and the page
logs no console errors. Skipped (with the reason) when /usr/bin/chromium or Playwright is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.checkpoint import save_model
from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, CharTokenizer
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.runs import load_run
from attnlab.viz.browser import find_chromium, launch
from attnlab.viz.extract import extract_attention
from attnlab.viz.html import save_attention_html

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if find_chromium() is None:
    pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium); the viewer test needs it",
                allow_module_level=True)

MIN_WEIGHT = 0.004  # the viewer skips fainter lines
TEXT = "the day is"


def make_gpt_run(folder):
    tokenizer = CharTokenizer.train("the next day is bright.")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=16, n_layer=2, n_head=3, n_embd=24))
    save_model(model, folder)
    tokenizer.save(folder / "tokenizer.json")
    return folder


def quantised(weights: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(weights, 0, 1) * 65535) / 65535


def visible_lines(weights: np.ndarray, layer: int, heads: list[int], queries=None, keys=None) -> int:
    """How many lines the head view should draw: (head, query, key) triples with a visible weight."""
    w = quantised(weights[layer])[heads]
    t_q, t_k = w.shape[1:]
    allowed = np.tril(np.ones((t_q, t_k), dtype=bool))
    w = np.where(allowed, w, 0.0)
    if queries is not None:
        w = w[:, queries]
    if keys is not None:
        w = w[:, :, keys]
    return int((w >= MIN_WEIGHT).sum())


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    def on_console(message):
        if message.type in ("error", "warning"):
            errors.append(f"console {message.type}: {message.text}")

    def on_request(request):
        if not request.url.startswith(("file:", "data:")):
            errors.append(f"network request: {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("request", on_request)
    page.goto(path.resolve().as_uri())
    return page, errors


def lines(page) -> int:
    return int(page.get_attribute("#lines", "data-lines"))


def test_gpt_viewer_hover_token_and_click_head(browser, tmp_path):
    run = load_run(make_gpt_run(tmp_path / "run"))
    attention = extract_attention(run, TEXT)
    weights = attention.maps[0].weights
    html = save_attention_html(attention, tmp_path / "viewer.html")
    page, errors = open_page(browser, html)

    assert page.is_visible("#head-view") and not page.is_visible("#model-view")
    assert page.is_hidden("#part-tabs")  # one kind of attention: no tabs
    assert page.locator("#query-tokens .tok").all_inner_texts() == attention.maps[0].queries
    assert page.get_attribute("#lines", "data-layer") == "0"
    assert lines(page) == visible_lines(weights, 0, [0, 1, 2])

    # hover query 5: only its lines, its keys shaded, the strongest keys listed
    page.hover("#query-tokens .tok >> nth=5")
    assert lines(page) == visible_lines(weights, 0, [0, 1, 2], queries=[5]) <= 3 * 6
    assert "focus" in page.get_attribute("#query-tokens .tok >> nth=5", "class")
    info = page.inner_text("#focus-info")
    assert "query 5 looks most at" in info
    mean = quantised(weights[0])[:, 5, :6].mean(0)
    assert f"{mean.max():.3f}" in info
    shaded = page.eval_on_selector_all("#key-tokens .tok", "ts => ts.map(t => t.style.background !== '')")
    assert shaded == [True] * 6 + [False] * 4  # the future is not shaded: query 5 cannot see it
    page.hover("h1")  # leave the token: every line again
    assert lines(page) == visible_lines(weights, 0, [0, 1, 2])

    # click head 1's colour: it is hidden, fewer lines; double-click head 2: only head 2
    page.click("#head-swatches button[data-head='1']")
    assert "off" in page.get_attribute("#head-swatches button[data-head='1']", "class")
    assert page.get_attribute("#lines", "data-heads") == "0,2"
    assert lines(page) == visible_lines(weights, 0, [0, 2])
    page.dblclick("#head-swatches button[data-head='2']")
    assert page.get_attribute("#lines", "data-heads") == "2"
    page.select_option("#layer-select", "1")
    assert page.get_attribute("#lines", "data-layer") == "1"
    assert lines(page) == visible_lines(weights, 1, [2])

    # click a key token: pinned focus on it survives moving the mouse away
    page.click("#key-tokens .tok >> nth=2")
    page.hover("h1")
    assert lines(page) == visible_lines(weights, 1, [2], keys=[2])
    assert "is looked at most by" in page.inner_text("#focus-info")

    # model view: one thumbnail per layer x head; click one to enlarge it, Escape closes it
    page.click("#view-tabs button[data-view=model]")
    assert page.is_visible("#model-view") and not page.is_visible("#head-view")
    assert page.locator(".thumb").count() == 2 * 3
    assert not page.is_visible("#overlay")
    page.click(".thumb[data-layer='1'][data-head='2']")
    assert page.is_visible("#overlay")
    assert page.inner_text("#overlay-title") == "self · layer 1 · head 2"
    box = page.locator("#overlay-canvas").bounding_box()
    assert box["width"] > 150 and box["height"] > 150
    page.keyboard.press("Escape")
    assert not page.is_visible("#overlay")
    page.screenshot(path=str(tmp_path / "shot.png"))
    assert errors == []


def test_encoder_decoder_viewer_has_encoder_decoder_and_cross_tabs(browser, tmp_path):
    from attnlab.models.transformer import Transformer, TransformerConfig

    folder = tmp_path / "run"
    src = CharTokenizer.train("abcdef", specials=SEQ2SEQ_SPECIALS)
    torch.manual_seed(0)
    save_model(Transformer(TransformerConfig(src_vocab_size=src.vocab_size, tgt_vocab_size=src.vocab_size,
                                             n_embd=16, n_head=2, n_encoder_layers=2, n_decoder_layers=1,
                                             d_ff=32, context_length=12)), folder)
    src.save(folder / "src_tokenizer.json")
    src.save(folder / "tgt_tokenizer.json")
    attention = extract_attention(load_run(folder), "abcde", target="edcba")
    page, errors = open_page(browser, save_attention_html(attention, tmp_path / "viewer.html"))
    assert page.locator("#part-tabs button").all_inner_texts() == ["encoder", "decoder", "cross"]
    assert page.get_attribute("body", "data-part") == "encoder"
    assert page.locator("#layer-select option").count() == 2
    page.click("#part-tabs button:text-is('cross')")
    assert page.get_attribute("body", "data-part") == "cross"
    assert page.locator("#query-tokens .tok").all_inner_texts() == ["<bos>", "e", "d", "c", "b", "a"]
    assert page.locator("#key-tokens .tok").all_inner_texts() == list("abcde")
    cross = attention.maps[2].weights
    assert lines(page) == int((quantised(cross[0]) >= MIN_WEIGHT).sum())  # cross-attention is not causal
    page.click("#view-tabs button[data-view=model]")
    assert page.locator(".thumb").count() == 1 * 2
    page.click("#part-tabs button:text-is('encoder')")
    assert page.locator(".thumb").count() == 2 * 2
    assert errors == []
