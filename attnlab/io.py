"""Files that are whole or absent: the one atomic writer, and readers that say clearly what is wrong.

Every file attnlab writes goes through :func:`write_atomic`:

1. the content is written to a hidden temporary file in the destination's own folder
   (``.NAME.<random>.tmp``, created with ``O_EXCL`` and mode ``0666`` so the umask decides the
   final permissions, as for any file a program creates);
2. the temporary file is flushed to the disk (``fsync``);
3. it is renamed over the destination (``os.replace``: atomic within one folder);
4. the folder is fsynced, so the rename itself survives a power cut.

A process killed at any instant therefore leaves either the old file or the new one, never half
of one; the most it leaves is a hidden ``*.tmp`` file, which :func:`is_temp_name` recognises and
:func:`remove_temp_files` clears. An error (a full disk) removes the temporary file and re-raises.

:func:`read_json` and :func:`read_metrics` are the readers: the first turns a missing or corrupt
JSON file into one :class:`AttnlabError`; the second reads a run's ``metrics.jsonl`` the same way
for everyone (the trainer on resume, ``attnlab runs``, ``attnlab plot``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

METRICS_FILE = "metrics.jsonl"
TEMP_SUFFIX = ".tmp"
_SAFETENSORS_TEMP = re.compile(r"\.tmp[A-Za-z0-9]{6}")
# errors that only mean "this system cannot fsync a folder" (Windows, some network file systems)
_NO_DIR_FSYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM,
                 errno.EISDIR}


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`write_atomic` (hidden, ending in ``.tmp``) or of the
    safetensors library, which writes ``.tmpXXXXXX`` next to its target and renames it."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) or _SAFETENSORS_TEMP.fullmatch(name) is not None


def fsync_file(path: str | Path) -> None:
    """Flush a file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (the names created, renamed or removed in it) to the disk.

    Where folders cannot be fsynced at all (the error says so), this does nothing.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as err:
        if err.errno in _NO_DIR_FSYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(fd)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _reserve_temp(path: Path) -> tuple[Path, int]:
    """Create an empty hidden temporary file next to ``path``, exclusively, with the permissions any new
    file gets (``0666`` less the umask); returns it and those permissions."""
    while True:
        tmp = _temp_name(path)
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        try:
            mode = os.fstat(fd).st_mode & 0o7777
        finally:
            os.close(fd)
        return tmp, mode


def write_atomic(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` to fill a temporary file, fsync it, rename it to ``path``, fsync the folder.

    ``write`` receives the temporary file's name and may open it (mode ``"w"``/``"wb"``) or hand it to
    a library (``savefig``, ``save_file``). On any error the temporary file is removed and the error
    re-raised; ``path`` is then untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _reserve_temp(path)
    try:
        write(str(tmp))
        if os.stat(tmp).st_mode & 0o7777 != mode:  # a library replaced the file with a private (0600) one
            os.chmod(tmp, mode)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    write_atomic(path, write)


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 2, ensure_ascii: bool = True) -> None:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii) + "\n")


def link_or_copy_atomic(source: str | Path, path: str | Path) -> None:
    """Make ``path`` hold ``source``'s bytes, atomically: a hard link (no extra disk) where the file
    system allows one, else a copy."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        os.link(source, tmp)
    except OSError:
        write_atomic(path, lambda name: shutil.copyfile(source, name))
        return
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def remove_temp_files(folder: str | Path) -> list[str]:
    """Remove the temporary files a killed :func:`write_atomic` left in ``folder``; returns their names."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for child in folder.iterdir():
        if is_temp_name(child.name) and child.is_file() and not child.is_symlink():
            try:
                child.unlink()
            except OSError:  # gone already, or not ours to remove: left for the next start
                continue
            removed.append(child.name)
    return removed


def read_json(path: str | Path, what: str = "file") -> Any:
    """Read a JSON file, turning every way it can be wrong into one clear :class:`AttnlabError`."""
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AttnlabError(
            f"{what} {path} is not valid JSON ({err}); the file is corrupt or not an attnlab file"
        ) from None
    except OSError as err:
        raise AttnlabError(f"cannot read {what} {path}: {err.strerror or err}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_metrics_row(row: Any) -> bool:
    """A row of ``metrics.jsonl``: an object with a numeric ``step``, and numeric ``loss`` / ``val_loss``
    where present."""
    return (isinstance(row, dict) and _is_number(row.get("step"))
            and all(_is_number(row[key]) for key in ("loss", "val_loss") if key in row))


def read_metrics(path: str | Path, end: int | None = None) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (``path`` is the run folder or the file itself).

    ``end`` reads only the file's first ``end`` bytes (the length a checkpoint recorded).

    A missing file has no rows. A line that is not JSON (one cut short when a run was killed)
    ends the read; a line that is JSON but not a metrics row (:func:`is_metrics_row`) is skipped,
    so one damaged file never stops a listing of all runs. A file that cannot be read at all
    raises :class:`AttnlabError`.
    """
    file = Path(path)
    if file.is_dir():
        file = file / METRICS_FILE
    if not file.is_file():
        return []
    try:
        with open(file, "rb") as f:
            data = f.read() if end is None else f.read(end)
    except OSError as err:
        raise AttnlabError(f"cannot read {file}: {err.strerror or err}") from None
    rows = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError: a line cut short
            break
        if is_metrics_row(row):
            rows.append(row)
    return rows
