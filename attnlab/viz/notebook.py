"""Attention in a notebook: an object that draws itself (``.plot()``) and shows the viewer inline.

In Jupyter the last expression of a cell is shown with its ``_repr_html_``: here, the self-contained
HTML viewer (head view and model view) inside an ``<iframe srcdoc=...>``, so its script and styles
never mix with the notebook's. Nothing is fetched from the network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from attnlab.viz.extract import ModelAttention


@dataclass
class AttentionView:
    """Tokens and attention weights of every layer and head, as read by one model on one text."""

    attention: ModelAttention

    @property
    def maps(self) -> list[Any]:
        """One :class:`~attnlab.viz.extract.AttentionMaps` per part (decoder, encoder, cross...)."""
        return self.attention.maps

    def select(self, layer: int | None = None, head: int | None = None, part: str | None = None) -> AttentionView:
        return AttentionView(self.attention.select(layer=layer, head=head, part=part))

    def plot(self, title: str | None = None) -> Any:
        """A matplotlib figure with one heat map per layer and head."""
        from attnlab.viz.heatmaps import attention_figure

        return attention_figure(self.attention, title).figure

    def html(self, title: str | None = None) -> str:
        """The viewer as one self-contained page."""
        from attnlab.viz.html import attention_html

        return attention_html(self.attention, title)

    def _repr_html_(self) -> str:
        page = html.escape(self.html(), quote=True)
        return (f'<iframe srcdoc="{page}" style="width:100%;height:620px;border:0" '
                'sandbox="allow-scripts" title="attnlab attention viewer"></iframe>')

    def __repr__(self) -> str:
        parts = ", ".join(f"{m.name}: {m.n_layers} layers x {m.n_heads} heads" for m in self.maps)
        return f"AttentionView({self.attention.text[:40]!r}; {parts})"
