"""Heat-map layout: nothing drawn over anything else, nothing cut at the figure's edges.

Checked on the rendered figure's text boxes: the heading and every title and label lie inside the
figure; an axis label never touches its own tick labels; neighbouring tick labels (the colour bar's
included) never touch; a panel title never touches the tick labels or axis name of the panel above.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from attnlab.viz.extract import AttentionMaps, ModelAttention
from attnlab.viz.heatmaps import attention_figure

matplotlib.use("Agg")

TEXT = "friends, romans, countrymen, lend me your ears; I come to bury Caesar"
WORDS = ["[MASK]", "countrymen", "lend", "me", "your", "ears", "<eos>"]
SOURCE = dict(query_axis="source (looking)", key_axis="source (looked at)")


def maps(name, queries, keys, layers=1, heads=1, **kw):
    weights = np.random.default_rng(0).random((layers, heads, len(queries), len(keys)))
    return AttentionMaps(name, f"{name} attention", list(queries), list(keys), weights / weights.sum(-1, keepdims=True),
                         **kw)


def alignment(n_target):
    return ModelAttention(
        "seq2seq", "RNN encoder-decoder (GRU) with Bahdanau attention: 24 target x 19 source tokens",
        "mercredi 9 mai 2018",
        [AttentionMaps("alignment", "Bahdanau alignment (target x source)", ["W"] * n_target,
                       list("mercredi 9 mai 2018"), np.full((1, 1, n_target, 19), 1 / 19),
                       query_axis="target (output) token", key_axis="source (input) token")],
        ["greedy translation: Wednesday, May 9, 2018"])


CASES = {
    "one panel, two characters": ModelAttention("encoder", "encoder-only Transformer: 1 layers x 1 heads, 2 tokens",
                                                "ab", [maps("self", "ab", "ab", **SOURCE)]),
    "Transformer encoder, 10 characters": ModelAttention(
        "transformer", "Transformer encoder-decoder: 2 encoder + 2 decoder layers x 4 heads", "attentions",
        [maps("encoder", "attentions", "attentions", 2, 4, **SOURCE)]),
    "Transformer encoder, words": ModelAttention(
        "transformer", "Transformer encoder-decoder", " ".join(WORDS), [maps("encoder", WORDS, WORDS, 2, 2, **SOURCE)]),
    "encoder, 70 characters": ModelAttention("encoder", "encoder-only Transformer", TEXT,
                                             [maps("self", TEXT[:70], TEXT[:70], 2, 2)]),
    "three parts": ModelAttention("transformer", "Transformer encoder-decoder", "abc", [
        maps("encoder", "abc", "abc", 2, 2, **SOURCE), maps("decoder", ["<bos>", "c", "b"], ["<bos>", "c", "b"], 1, 2,
                                                            causal=True),
        maps("cross", ["<bos>", "c", "b"], "abc", 1, 2)]),
    "alignment, one target token": alignment(1),
    "alignment, 24 target tokens": alignment(24),
}


def layout_problems(drawn) -> list[str]:
    fig = drawn.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    edge = fig.bbox.padded(1)
    problems = []

    def box(text):
        return text.get_window_extent(renderer)

    def visible(texts):
        return [t for t in texts if t.get_text() and t.get_visible()]

    texts = [fig._suptitle, drawn.colorbar.ax.yaxis.label]
    for panel in drawn.panels:
        texts += [panel.ax.title, panel.ax.xaxis.label, panel.ax.yaxis.label]
    for text in visible(texts):
        if not (edge.x0 <= box(text).x0 and box(text).x1 <= edge.x1 and edge.y0 <= box(text).y0
                and box(text).y1 <= edge.y1):
            problems.append(f"{text.get_text()!r} is cut at the figure's edge")
    axes = [p.ax for p in drawn.panels] + [drawn.colorbar.ax]
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            ticks = visible(axis.get_ticklabels())
            problems += [f"axis label {axis.label.get_text()!r} overlaps tick {t.get_text()!r}"
                         for t in ticks if axis.label.get_text() and box(axis.label).overlaps(box(t))]
            problems += [f"ticks {a.get_text()!r} and {b.get_text()!r} overlap"
                         for a, b in zip(ticks, ticks[1:]) if box(a).overlaps(box(b))]
    below_axes = [t for p in drawn.panels for t in visible(p.ax.get_xticklabels() + [p.ax.xaxis.label])]
    for panel in drawn.panels:
        problems += [f"title {panel.ax.get_title()!r} overlaps {t.get_text()!r}"
                     for t in below_axes if box(panel.ax.title).overlaps(box(t))]
    import matplotlib.pyplot as plt

    plt.close(fig)
    return problems


@pytest.mark.parametrize("case", list(CASES))
def test_nothing_overlaps_and_nothing_is_cut(case):
    assert layout_problems(attention_figure(CASES[case])) == []


def test_an_alignment_is_titled_as_an_alignment_not_as_layer_0_head_0():
    drawn = attention_figure(alignment(5))
    (panel,) = drawn.panels
    assert panel.ax.get_title() == "Bahdanau alignment (target x source)"
    heading = drawn.figure._suptitle.get_text()
    assert heading.replace("\n", " ").startswith("RNN encoder-decoder (GRU) with Bahdanau attention")
    one_head = attention_figure(ModelAttention("gpt", "GPT", "ab", [maps("self", "ab", "ab", 1, 1)]))
    assert one_head.panels[0].ax.get_title() == "layer 0 · head 0"  # a real layer and head keep their numbers


def test_single_characters_stand_upright_and_longer_labels_turn():
    chars = attention_figure(CASES["Transformer encoder, 10 characters"])
    words = attention_figure(CASES["Transformer encoder, words"])
    bottom = [p.ax for p in chars.panels if p.layer == 1]
    assert {t.get_rotation() for ax in bottom for t in ax.get_xticklabels()} == {0.0}
    assert {t.get_rotation() for p in words.panels if p.layer == 1 for t in p.ax.get_xticklabels()} == {90.0}
