"""Hooks into training: the trainer calls them; projects hook in instead of editing the trainer.

A callback is an object with any of these methods (a :class:`Callback` subclass overrides what it
needs), or a plain function ``f(trainer, row)``, which is called at every evaluation:

- ``on_step(trainer, row)`` after every optimizer step (``row``: step, loss, lr, tokens/s, time);
- ``on_eval(trainer, row)`` after every evaluation (``row``: step, val_loss, time); returning True
  stops training early;
- ``on_checkpoint(trainer, step)`` after a checkpoint is published;
- ``on_end(trainer, result)`` when :meth:`Trainer.fit` returns.

Callbacks run on every rank under torchrun; loggers that write files check ``trainer.dist.is_main``.
"""

from __future__ import annotations

from typing import Any


class Callback:
    """The four hooks, each doing nothing; override the ones you need."""

    def on_step(self, trainer: Any, row: dict[str, Any]) -> None:
        pass

    def on_eval(self, trainer: Any, row: dict[str, Any]) -> bool | None:
        return None

    def on_checkpoint(self, trainer: Any, step: int) -> None:
        pass

    def on_end(self, trainer: Any, result: Any) -> None:
        pass


def dispatch(callbacks: list[Any], event: str, trainer: Any, payload: Any) -> bool:
    """Call ``event`` on every callback that has it (a plain function counts as ``on_eval``).

    Returns True if any ``on_eval`` asked to stop.
    """
    stop = False
    for callback in callbacks:
        hook = getattr(callback, event, None)
        if hook is None and event == "on_eval" and callable(callback) and not isinstance(callback, Callback):
            hook = callback
        if hook is not None:
            stop = bool(hook(trainer, payload)) or stop
    return stop
