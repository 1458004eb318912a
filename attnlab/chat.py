"""One chat loop for every era: ELIZA (1966) and a trained GPT (2018) are talked to the same way.

A *responder* is any object with ``reply(text: str) -> str``. It may also have:

- ``greeting``: said first (a string, or None);
- ``reset()``: called once before the conversation starts;
- ``name``: the label its lines get (default "bot");
- ``exit_words``: more inputs that end the conversation (ELIZA's script lists some);
- ``farewell(text) -> str | None``: the last word when the user leaves (ELIZA's goodbye rule);
- ``pop_notes() -> list[str]``: remarks about the last input, shown in parentheses before the
  reply (a trained char model says which characters of the input it had to drop).

The conversation ends on "quit", "bye" or "exit" (case and trailing punctuation ignored), on
one of the responder's ``exit_words``, on end of input (Ctrl-D) or on Ctrl-C. With
``transcript``, the whole conversation is written to that file at the end, atomically (never
half a file; missing folders are created), also when the loop is interrupted.

Everything shown or written passes through :func:`printable`: what the user typed comes back
(ELIZA reflects it, a model continues it, the transcript records it), and a terminal escape
sequence in it must be seen as text, never obeyed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from attnlab.errors import AttnlabError

EXIT_WORDS = ("quit", "bye", "exit")
USER = "you"

# C0 controls but tab and newline, DEL, C1 controls (U+0080-U+009F: 8-bit CSI etc.), lone surrogates
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: object) -> str:
    """``text`` made safe for a terminal: control characters become visible escapes.

    ESC, the other C0 controls except newline and tab, DEL and the C1 controls are written as
    ``\\xNN``, so that ``ESC [31m`` shows as the text ``\\x1b[31m`` instead of turning the
    terminal red (or moving the cursor, retitling the window, ...). Lone surrogates (bytes that
    were not UTF-8) become ``?``. Everything else, other scripts and emoji included, is kept.

    >>> printable("red \\x1b[31mtext\\x07")
    'red \\\\x1b[31mtext\\\\x07'
    """
    return _UNPRINTABLE.sub(_escape, str(text))


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return "?" if code >= 0xD800 else f"\\x{code:02x}"


class Responder(Protocol):
    def reply(self, text: str) -> str: ...


def is_exit(text: str, responder: Any = None) -> bool:
    """Whether this input ends the conversation."""
    word = text.strip().lower().strip(" \t.!?,;:'\"")
    return word in EXIT_WORDS or word in tuple(getattr(responder, "exit_words", ()) or ())


def run_chat(
    responder: Responder,
    *,
    transcript: str | None = None,
    input_fn: Callable[[str], str] = input,
    output_fn: Callable[[str], Any] = print,
    greeting: str | None = None,
    name: str | None = None,
    prompt: str = f"{USER}: ",
) -> list[tuple[str, str]]:
    """Talk until the user leaves; return the conversation as (speaker, text) pairs.

    ``input_fn(prompt)`` gives the user's lines (EOFError ends the chat); ``output_fn`` shows
    the responder's lines, prefixed with its name. Blank input lines are skipped. An
    :class:`AttnlabError` raised by the responder is shown and the chat goes on.
    """
    speaker = name or getattr(responder, "name", None) or "bot"
    if transcript is not None and Path(transcript).is_dir():
        raise AttnlabError(f"--transcript {transcript} is a folder; give a file name, e.g. chat.txt")
    turns: list[tuple[str, str]] = []

    def say(text: str) -> None:
        turns.append((speaker, text))
        output_fn(printable(f"{speaker}: {text}"))

    reset = getattr(responder, "reset", None)
    if callable(reset):
        reset()
    try:
        opening = greeting if greeting is not None else getattr(responder, "greeting", None)
        if opening:
            say(str(opening))
        while True:
            try:
                line = input_fn(prompt)
            except (EOFError, KeyboardInterrupt):
                break
            text = line.strip()
            if not text:
                continue
            turns.append((USER, text))
            if is_exit(text, responder):
                farewell = getattr(responder, "farewell", None)
                last = farewell(text) if callable(farewell) else None
                if last:
                    say(last)
                break
            answer = None
            try:
                answer = responder.reply(text)
            except AttnlabError as err:
                output_fn(printable(f"({err})"))
            pop_notes = getattr(responder, "pop_notes", None)
            for note in pop_notes() if callable(pop_notes) else ():
                output_fn(printable(f"(note: {note})"))
            if answer is not None:
                say(answer)
    finally:
        if transcript is not None:
            write_transcript(transcript, turns, speaker)
    return turns


def write_transcript(path: str | Path, turns: list[tuple[str, str]], speaker: str) -> None:
    """Write the conversation as ``speaker: text`` lines, atomically, made :func:`printable`
    (a transcript shown with ``cat`` must not replay escape sequences; stray surrogates from a
    terminal become "?")."""
    from attnlab.io import write_text_atomic

    stamp = datetime.now().isoformat(timespec="seconds")
    lines = [f"# attnlab chat with {speaker}, {stamp}"]
    lines += [f"{who}: {text}" for who, text in turns]
    text = printable("\n".join(lines)) + "\n"
    try:
        write_text_atomic(path, text)
    except OSError as err:
        raise AttnlabError(f"cannot write the transcript {path}: {err.strerror or err}") from err
