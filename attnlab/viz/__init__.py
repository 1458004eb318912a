"""attnlab.viz: attention you can see.

- :mod:`attnlab.viz.extract`: ``extract_attention(run, text)`` -> :class:`ModelAttention` for GPT,
  encoder-only, Transformer (encoder / decoder / cross) and Bahdanau runs, through a registry of
  extractors keyed by ``model_type`` (``register_extractor``).
- :mod:`attnlab.viz.heatmaps`: a grid of heat maps, one per layer and head (PNG/SVG/PDF).
- :mod:`attnlab.viz.html`: the self-contained HTML viewer (head view, model view).
- :mod:`attnlab.viz.browser`: screenshots of the viewer in headless Chromium.

Loss curves live in :mod:`attnlab.training.plots`. Nothing here is imported by ``import attnlab``;
matplotlib and PyTorch load only when a picture is drawn.
"""
