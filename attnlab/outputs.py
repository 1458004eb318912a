"""Where results go, checked before any work is done.

A picture's ``--out`` (``attnlab attention``, ``attnlab plot``) must name a file: with one of the
accepted endings, in a folder that exists and can be written to, and not a folder, a device or a
pipe itself (a chat transcript may ask for its folders to be made). A results folder (``attnlab
compare --out``, ``attnlab ablate --runs``, ``attnlab convert``'s destination) must be a folder or
not exist yet, below a folder that does. Each check raises one
:class:`~attnlab.errors.AttnlabError` naming the flag, before a model is loaded or trained, so a
mistake costs nothing and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from attnlab.errors import AttnlabError


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def check_output_file(path: str | os.PathLike, flag: str = "--out", suffixes: Sequence[str] = (),
                      endings_hint: str | None = None, create_folders: bool = False) -> Path:
    """``path`` as a :class:`Path` if a file can be written there, else :class:`AttnlabError`.

    ``suffixes`` (lower case, with the dot) are the accepted endings; ``endings_hint`` replaces the
    default wording of the error about them. ``create_folders``: the writer makes missing folders (a
    chat transcript), so only the folders that exist are checked.
    """
    text = os.fspath(path)
    if not text.strip():
        raise AttnlabError(f"{flag} is empty; give a file name")
    out = Path(text)
    example = f"{suffixes[0]}" if suffixes else ""
    if text.endswith(("/", os.sep)) or out.is_dir():
        raise AttnlabError(f"{flag} {text} is a folder; give a file name inside it, e.g. {out / ('out' + example)}")
    if suffixes and out.suffix.lower() not in suffixes:
        hint = endings_hint or f"end the name with {' or '.join(suffixes)}"
        raise AttnlabError(f"{flag} {text}: {hint}")
    if out.exists() and not out.is_file():
        raise AttnlabError(f"{flag} {text} exists and is not a regular file (a device, pipe or socket); "
                           "give the name of a file")
    folder = out.parent
    if create_folders:
        check_output_folder(folder, flag)
        return out
    if not folder.exists():
        raise AttnlabError(f"{flag} {text}: the folder {folder} does not exist; create it first "
                           f"(mkdir -p {folder})")
    if not folder.is_dir():
        raise AttnlabError(f"{flag} {text}: {folder} is a file, not a folder")
    if not _writable(folder):
        raise AttnlabError(f"{flag} {text}: cannot write in the folder {folder} (permission denied)")
    return out


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a :class:`Path` if it is a folder, or can be made one (its missing parents included)."""
    text = os.fspath(path)
    if not text.strip():
        raise AttnlabError(f"{flag} is empty; give a folder")
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise AttnlabError(f"{flag} {text} is a file, not a folder; give a folder (it is created if missing)")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise AttnlabError(f"{flag} {text}: {existing} is a file, so no folder can be made below it")
    if existing.exists() and not _writable(existing):
        raise AttnlabError(f"{flag} {text}: cannot write in {existing} (permission denied)")
    return folder
