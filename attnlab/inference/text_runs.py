"""Runs that write text: the language models behind ``attnlab generate`` and ``attnlab chat``.

A translation run (Bahdanau, seq2seq-*, Transformer) maps a source sentence to a target sentence
and an encoder run fills in masked words; neither continues a prompt. :func:`load_text_run` loads
a run and refuses those with one error that names the command that does fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

TRANSLATION_TYPES = ("seq2seq", "transformer")
OTHER_COMMANDS = {
    "seq2seq": ("a translation run (an RNN encoder-decoder)", "attnlab translate {run} \"TEXT\""),
    "transformer": ("a translation run (an encoder-decoder Transformer)", "attnlab translate {run} \"TEXT\""),
    "encoder": ("an encoder run (it fills in [MASK]ed words)", "attnlab fill {run} \"TEXT with [MASK]\""),
}


def refuse_non_language_model(run: Any, command: str) -> None:
    """Raise :class:`AttnlabError` unless ``run`` (an ``attnlab.runs.Run``) holds a language model."""
    model_type = getattr(run.model, "model_type", type(run.model).__name__)
    if model_type in OTHER_COMMANDS:
        what, use = OTHER_COMMANDS[model_type]
        raise AttnlabError(f"{run.path} is {what}, not a language model, so '{command}' cannot continue a "
                           f"prompt with it; use '{use.format(run=run.path)}' instead")


def load_text_run(path: str | Path, command: str, device: str = "cpu") -> Any:
    """Load the run at ``path`` for ``command`` ("attnlab generate", "attnlab chat"): a language model
    with its tokenizer, or one clear error."""
    from attnlab.runs import load_run

    run = load_run(path, device=device)
    refuse_non_language_model(run, command)
    return run
