"""``attnlab serve``: a local studio in the browser, and an OpenAI-compatible API, on one server.

One job per module:

- :mod:`~attnlab.serve.registry`: the runs under the served folders, by name, loaded on first use,
  one lock per model;
- :mod:`~attnlab.serve.generation`: generating in a worker thread under that lock, stoppable when the
  client goes;
- :mod:`~attnlab.serve.validate`: checking request bodies (bounded, typed) and the JSON error shape;
- :mod:`~attnlab.serve.openai_api`: ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``;
- :mod:`~attnlab.serve.studio_api`: the JSON and the attention viewer the pages read;
- :mod:`~attnlab.serve.app`: :func:`create_app`, the pages (``static/``), ``/health``, error handling;
- :mod:`~attnlab.serve.server`: :func:`serve` and :class:`BackgroundServer`.
"""

from attnlab.serve.app import create_app
from attnlab.serve.server import BackgroundServer, serve

__all__ = ["BackgroundServer", "create_app", "serve"]
