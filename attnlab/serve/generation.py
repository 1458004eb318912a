"""Generating text for a request: in a worker thread, under the model's lock, stoppable.

PyTorch work must not block the server's event loop, so each generation runs in a thread of its own
that first takes the model's lock (requests to one model queue; two never share a KV cache) and hands
each new piece of text to the event loop. When the client goes away the reader sets
:attr:`Generation.cancelled` and the worker stops at its next token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from attnlab.errors import AttnlabError


class Cancelled(Exception):
    """Raised inside the worker when the reader has gone."""


@dataclass
class Result:
    """The whole text, how many tokens it took, and why it ended ("stop" or "length")."""

    text: str
    tokens: int
    prompt_tokens: int
    finish_reason: str


def generate(entry: Any, prompt: str, config: Any, stop: list[str], unknown: str,
             on_text: Callable[[str], None], cancelled: threading.Event) -> Result:
    """Continue ``prompt`` with ``entry``'s model (call with no lock held; it takes the model's)."""
    from attnlab.inference.sampling import generate_text

    run = entry.run
    tokenizer = run.tokenizer

    def emit(piece: str) -> None:
        if cancelled.is_set():
            raise Cancelled
        on_text(piece)

    with entry.lock:
        if cancelled.is_set():
            raise Cancelled
        prompt_tokens = len(tokenizer.encode(prompt, unknown="skip"))
        if prompt_tokens == 0:
            raise AttnlabError("the prompt has no character this model knows; give it some text it saw "
                               "in training")
        text = generate_text(run.model, tokenizer, prompt, config, stop=stop, on_text=emit, unknown=unknown)
    tokens = len(tokenizer.encode(text, unknown="skip")) if text else 0
    finish = "length" if tokens >= config.max_new_tokens else "stop"
    return Result(text, tokens, prompt_tokens, finish)


class Generation:
    """One generation running in a worker thread; iterate ``pieces()`` from the event loop."""

    def __init__(self, work: Callable[[Callable[[str], None], threading.Event], Any]) -> None:
        self.cancelled = threading.Event()
        self.result: Any = None
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._done = object()
        self._work = work
        threading.Thread(target=self._run, daemon=True, name="attnlab-serve-generate").start()

    def _put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop closed (server shutting down): stop generating
            self.cancelled.set()

    def _run(self) -> None:
        try:
            self.result = self._work(self._put, self.cancelled)
        except Cancelled:
            pass
        except BaseException as err:  # handed to the reader, raised there
            self._put(err)
        self._put(self._done)

    async def pieces(self) -> AsyncIterator[str]:
        """The text as it comes; raises what the worker raised. Leaving early cancels the worker."""
        try:
            while (item := await self._queue.get()) is not self._done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.cancelled.set()

    async def wait(self) -> Any:
        """Run to the end and return the worker's result."""
        async for _ in self.pieces():
            pass
        return self.result
