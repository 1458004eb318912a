"""Attention as a grid of heat maps: one panel per layer and head, token labels on both axes.

Panel ``(layer, head)`` draws ``weights[layer, head]``: row ``i`` is the query token (looking),
column ``j`` the key token (looked at), and the colour is the weight ``alpha_ij``, on one shared
colour bar. The colour scale is a square root (``PowerNorm(gamma=0.5)``) so that the many small
weights of a long text stay visible; the bar is labelled with the true weights. Positions a causal
mask hides (the future) are light grey, not "zero attention".

The figure grows with the text: every token gets its own label while there is room (about 100
tokens per panel on a 40-inch-wide figure); beyond that every k-th token is labelled. Nothing is
drawn over anything else or cut at the edges: the heading is wrapped to the figure's width, a short
colour bar gets fewer ticks and a two-line label, and key labels are turned upright when they are
single characters. An RNN encoder-decoder's alignment is one matrix, not a grid of layers and
heads, so its panel is titled with what it is (``Bahdanau alignment``), not "layer 0 · head 0".

:func:`plot_alignment` draws a single target-by-source alignment of a translation (Bahdanau's
``alpha_ij``, or a Transformer's cross-attention) on a plain grey scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.errors import AttnlabError
from attnlab.viz.extract import AttentionMaps, ModelAttention, display_token

TOKEN_INCHES = 0.13  # room per token when every label fits at a comfortable size
MIN_PANEL_INCHES = 1.9
MAX_WIDTH_INCHES = 40.0
MAX_HEIGHT_INCHES = 60.0
DPI = 120
CMAP = "viridis"
MASKED_COLOR = "#e4e4e4"
IMAGE_FORMATS = ("png", "svg", "pdf")
MIN_WIDTH_INCHES = 5.5  # room for a readable heading above a single small panel
MIN_HEIGHT_INCHES = 3.4  # room for a colour bar with its ticks beside a one-row panel
HEADING_POINTS = 10.0
BAR_TICKS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
SHORT_BAR_TICKS = (0.0, 0.05, 0.25, 0.5, 1.0)  # 0.01 and 0.1 crowd 0 and 0.05 on a short bar
BAR_LABEL = "attention weight (colour: square-root scale)"
# kinds of attention that are one matrix, not a stack of layers x heads (the RNN encoder-decoder's)
SINGLE_MATRIX_PARTS = ("alignment",)


@dataclass
class Panel:
    part: str
    layer: int
    head: int
    ax: Any


@dataclass
class AttentionFigure:
    """A drawn grid: the matplotlib figure, one :class:`Panel` per heat map, and the colour bar."""

    figure: Any
    panels: list[Panel]
    colorbar: Any

    def save(self, path: str | Path) -> Path:
        """Write the figure (format from the suffix: png, svg or pdf) atomically, then close it."""
        import matplotlib.pyplot as plt

        from attnlab.io import write_atomic

        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in IMAGE_FORMATS:
            raise AttnlabError(f"cannot write a heat map to {path}: use a .png, .svg or .pdf file name")
        write_atomic(path, lambda tmp: self.figure.savefig(tmp, format=fmt, dpi=DPI))
        plt.close(self.figure)
        return path


def _label_layout(tokens_per_panel: int, inches_per_token: float) -> tuple[float, int]:
    """(font size in points, label every k-th token) for tokens spaced ``inches_per_token`` apart."""
    pitch = inches_per_token * 72.0
    size = min(9.0, 0.8 * pitch)
    if size >= 5.0:
        return size, 1
    return 6.0, math.ceil(7.5 / pitch)


def attention_figure(attention: ModelAttention, title: str | None = None) -> AttentionFigure:
    """Draw every map of ``attention`` (already narrowed with ``.select(...)`` if wanted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm

    rows: list[tuple[AttentionMaps, int]] = [(m, li) for m in attention.maps for li in range(m.n_layers)]
    if not rows:
        raise AttnlabError("there is no attention map to draw")
    ncols = max(m.n_heads for m in attention.maps)
    max_q = max(len(m.queries) for m in attention.maps)
    max_k = max(len(m.keys) for m in attention.maps)
    total_q = sum(len(m.queries) for m, _ in rows)
    inches = min(TOKEN_INCHES, MAX_WIDTH_INCHES / (ncols * max_k), MAX_HEIGHT_INCHES / total_q)
    inches = max(inches, MIN_PANEL_INCHES / max(max_q, max_k))
    font, step = _label_layout(max(max_q, max_k), inches)
    longest = max(len(t) for m in attention.maps for t in m.queries + m.keys)
    label_inches = 0.6 + min(longest, 16) * font / 72 * 0.62  # room for tick labels and axis names
    width = max(MIN_WIDTH_INCHES, ncols * (max_k * inches + 0.25) + label_inches + 1.3)
    heading = wrap_heading(title or _heading(attention), width, HEADING_POINTS)
    height = sum(len(m.queries) * inches + 0.45 for m, _ in rows) + label_inches + 0.6
    height = max(MIN_HEIGHT_INCHES, height + 0.18 * (heading.count("\n") + 1))
    single = len(rows) == 1 and ncols == 1
    fig = plt.figure(figsize=(width, height), layout="constrained")
    grid = fig.add_gridspec(len(rows), ncols, height_ratios=[len(m.queries) for m, _ in rows])
    cmap = plt.get_cmap(CMAP).with_extremes(bad=MASKED_COLOR)
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    panels: list[Panel] = []
    image = None
    several_parts = len(attention.maps) > 1
    for r, (maps, li) in enumerate(rows):
        last_row_of_part = r + 1 == len(rows) or rows[r + 1][0] is not maps
        for hi in range(ncols):
            ax = fig.add_subplot(grid[r, hi])
            if hi >= maps.n_heads:
                ax.set_axis_off()
                continue
            weights = maps.weights[li, hi].astype(np.float64)
            if maps.causal:
                weights = np.where(np.tril(np.ones_like(weights, dtype=bool)), weights, np.nan)
            image = ax.imshow(weights, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
            layer, head = maps.layer_ids[li], maps.head_ids[hi]
            ax.set_title(_panel_title(maps, layer, head, several_parts), fontsize=max(font + 1, 7), pad=4)
            _ticks(ax, maps, font, step, show_y=hi == 0, show_x=last_row_of_part)
            if hi == 0:
                ax.set_ylabel(maps.query_axis, fontsize=max(font, 7), labelpad=6)
            if last_row_of_part:
                ax.set_xlabel(maps.key_axis, fontsize=max(font, 7), labelpad=6)
            panels.append(Panel(maps.name, layer, head, ax))
    shrink = min(1.0, 6.0 / height) if not single else 0.8
    bar_inches = shrink * (height - label_inches - 0.6 - 0.18 * (heading.count("\n") + 1))
    bar = fig.colorbar(image, ax=[p.ax for p in panels], shrink=shrink, aspect=30, pad=0.01)
    short = bar_inches < 2.6
    bar.set_label(BAR_LABEL.replace(" (", "\n(") if short else BAR_LABEL, fontsize=8)
    bar.set_ticks(list(SHORT_BAR_TICKS if short else BAR_TICKS))
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(heading, fontsize=HEADING_POINTS if not single else HEADING_POINTS - 1)
    return AttentionFigure(fig, panels, bar)


def _panel_title(maps: AttentionMaps, layer: int, head: int, several_parts: bool) -> str:
    """"layer 1 · head 2" (with the part's name when the figure has several), or what a
    single-matrix map is ("Bahdanau alignment (target x source)")."""
    if maps.name in SINGLE_MATRIX_PARTS and maps.n_layers == 1 and maps.n_heads == 1:
        return maps.title
    name = f"{maps.name} · " if several_parts else ""
    return f"{name}layer {layer} · head {head}"


def _ticks(ax: Any, maps: AttentionMaps, font: float, step: int, show_y: bool, show_x: bool) -> None:
    ax.tick_params(length=0, pad=2)
    if show_y:
        rows = range(0, len(maps.queries), step)
        ax.set_yticks(list(rows), [maps.queries[i] for i in rows], fontsize=font)
    else:
        ax.set_yticks([])
    if show_x:
        cols = range(0, len(maps.keys), step)
        labels = [maps.keys[j] for j in cols]
        upright = all(len(label) <= 1 for label in labels)  # single characters read best standing
        ax.set_xticks(list(cols), labels, fontsize=font, rotation=0 if upright else 90)
    else:
        ax.set_xticks([])


def wrap_heading(heading: str, width_inches: float, points: float) -> str:
    """Each line of ``heading`` folded at spaces so that it fits ``width_inches`` at ``points``
    (measured with matplotlib's own font metrics); a word too long for a line is cut."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    prop = FontProperties(size=points)
    room = (width_inches - 0.3) * 72.0

    def fits(text: str) -> bool:
        return text_to_path.get_text_width_height_descent(text, prop, ismath=False)[0] <= room

    lines: list[str] = []
    for line in heading.split("\n"):
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if fits(candidate) or not current:
                current = candidate
            else:
                lines.append(current)
                current = word
            while not fits(current) and len(current) > 1:  # one word wider than the figure
                cut = max(i for i in range(1, len(current) + 1) if fits(current[:i]) or i == 1)
                lines.append(current[:cut])
                current = current[cut:]
        lines.append(current)
    return "\n".join(lines)


def _heading(attention: ModelAttention) -> str:
    text = attention.text.replace("\n", " ")
    text = text if len(text) <= 80 else text[:77] + "..."
    lines = [attention.description, f"text: {text!r}", *attention.notes]
    return "\n".join(lines)


def save_attention_image(attention: ModelAttention, path: str | Path,
                         title: str | None = None) -> AttentionFigure:
    """Draw and write ``attention`` to ``path`` (png/svg/pdf); returns the (closed) figure's panels."""
    drawn = attention_figure(attention, title)
    drawn.save(path)
    return drawn


def plot_alignment(src_tokens: Sequence[str], tgt_tokens: Sequence[str], weights: Any, path: str | Path,
                   title: str | None = None) -> Path:
    """One target-by-source alignment (``weights[i, j]``: how much target token ``i`` looked at source
    token ``j``, e.g. :meth:`attnlab.inference.translate.Translator.alignment`) drawn in grey with token
    labels and a colour bar, written to a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnlab.io import write_atomic

    weights = np.asarray(weights.detach().float().cpu() if hasattr(weights, "detach") else weights,
                         dtype=np.float32)
    if weights.shape != (len(tgt_tokens), len(src_tokens)):
        raise AttnlabError(f"alignment weights have shape {weights.shape}, expected "
                           f"({len(tgt_tokens)} target, {len(src_tokens)} source tokens)")
    width = max(4.0, 0.32 * len(src_tokens) + 2.0)
    height = max(3.0, 0.32 * len(tgt_tokens) + 1.5)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), [display_token(t) for t in src_tokens], rotation=90, fontsize=8)
    ax.set_yticks(range(len(tgt_tokens)), [display_token(t) for t in tgt_tokens], fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="attention weight")
    fig.tight_layout()
    path = Path(path)
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)
    return path
