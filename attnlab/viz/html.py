"""The attention viewer: one self-contained HTML file (no network, no CDN, no server).

The page holds the attention weights (little-endian uint16, ``round(w * 65535)``, base64: exact to
1.5e-5) and its own script and style, inlined from ``attnlab/viz/assets``. It has

- a **head view**: query tokens on the left, key tokens on the right, a line per (query, key)
  pair and head whose opacity is the weight ``alpha_ij``; one colour per head (click to show/hide,
  double-click to show only that head); hover a token to see only its lines, click to pin it;
- a **model view**: a thumbnail heat map for every layer x head; click one to enlarge it with
  token labels and the weight under the mouse;
- one tab per kind of attention when there are several (encoder / decoder / cross).
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.errors import AttnlabError
from attnlab.viz.extract import AttentionMaps, ModelAttention

MAX_WEIGHTS = 12_000_000  # ~32 MB of page; beyond that pick --layer/--head or a shorter text

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="attnlab">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<main id="app"></main>
<noscript>This attention viewer needs JavaScript (it runs locally; nothing is downloaded).</noscript>
<script type="application/json" id="attn-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    return resources.files("attnlab.viz").joinpath("assets", name).read_text(encoding="utf-8")


def pack_weights(weights: np.ndarray) -> str:
    """Weights in [0, 1] -> base64 of little-endian uint16 ``round(w * 65535)``."""
    q = np.rint(np.clip(np.asarray(weights, dtype=np.float64), 0.0, 1.0) * 65535).astype("<u2")
    return base64.b64encode(q.tobytes()).decode("ascii")


def _part(maps: AttentionMaps) -> dict[str, Any]:
    return {
        "name": maps.name, "title": maps.title, "queries": maps.queries, "keys": maps.keys,
        "layers": maps.layer_ids, "heads": maps.head_ids, "causal": maps.causal,
        "queryAxis": maps.query_axis, "keyAxis": maps.key_axis,
        "shape": list(maps.weights.shape), "weights": pack_weights(maps.weights),
    }


def viewer_data(attention: ModelAttention, title: str | None = None) -> dict[str, Any]:
    """Everything the page needs, as plain JSON-able values."""
    total = sum(m.weights.size for m in attention.maps)
    if total > MAX_WEIGHTS:
        raise AttnlabError(f"{total:,} attention weights are too many for one page (limit {MAX_WEIGHTS:,}); "
                           "pick one --layer and/or --head, or a shorter --text")
    return {
        "title": title or f"attnlab attention: {attention.model_type}",
        "description": attention.description,
        "text": attention.text,
        "notes": attention.notes,
        "parts": [_part(m) for m in attention.maps],
    }


def attention_html(attention: ModelAttention, title: str | None = None) -> str:
    """The whole page as one string."""
    data = viewer_data(attention, title)
    # JSON inside <script>: escape "<" so no token can close the element ("</script>") early
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return TEMPLATE.format(title=html.escape(data["title"]), css=_asset("viewer.css"), js=_asset("viewer.js"),
                           data=payload)


def save_attention_html(attention: ModelAttention, path: str | Path, title: str | None = None) -> Path:
    """Write the viewer page to ``path`` atomically."""
    from attnlab.io import write_text_atomic

    path = Path(path)
    write_text_atomic(path, attention_html(attention, title))
    return path
