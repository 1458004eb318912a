"""Write a folder all at once: into a temporary folder beside it, under a lock, renamed into place.

``with AtomicFolder(out) as tmp:`` gives an empty ``.NAME.partial`` folder beside ``out``; when the
block ends without an error it becomes ``out`` by one rename, so a reader sees either no folder or a
complete one. An error removes the temporary folder. A process killed with SIGKILL leaves the
``.partial`` folder behind (no reader takes it: it is not ``out``); the next writer of ``out``
removes it and starts again.

The lock is ``.NAME.lock`` beside ``out``, held with ``flock`` (the kernel drops it when the holder
dies, so a killed writer never leaves a stale lock). A second writer either fails at once
(``wait=False``: one clear error) or waits its turn (``wait=True``: used by the preparation cache,
where every rank of a torchrun job may ask for the same folder at once).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from attnlab.errors import AttnlabError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; writers are not serialised there
    fcntl = None


class FolderLock:
    """An exclusive ``flock`` on ``.NAME.lock`` beside a folder; the lock file is removed on release."""

    def __init__(self, target: Path, wait: bool = False) -> None:
        self.path = target.parent / f".{target.name}.lock"
        self.target, self.wait = target, wait
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as err:
                raise AttnlabError(f"cannot create {self.path}: {err.strerror or err}") from None
            if fcntl is None:
                self.fd = fd
                return self
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                raise AttnlabError(f"another process is writing {self.target} (it holds {self.path}); "
                                   "wait for it to finish or choose another --out") from None
            try:  # the holder before us may have removed the file: lock the one that is there now
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    self.fd = fd
                    return self
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def partial_path(target: Path) -> Path:
    """Where a folder is written before it is renamed into place."""
    return target.parent / f".{target.name}.partial"


class AtomicFolder:
    """``with AtomicFolder(out, replace=...) as tmp:`` write into ``tmp``; ``out`` appears at the end.

    ``replace``: a function of the existing ``out`` that returns True if it may be replaced (it is
    then renamed aside and removed after the new one is in place); None refuses any existing ``out``.
    ``exists_ok``: checked once the lock is held; if it returns True for an existing ``out`` the
    block is skipped (``tmp`` is None): another process made the folder while we waited.
    """

    def __init__(self, target: str | Path, replace=None, wait: bool = False, quiet: bool = False,
                 exists_ok=None) -> None:
        self.target = Path(target).expanduser().absolute()
        self.replace, self.quiet, self.exists_ok = replace, quiet, exists_ok
        self.skipped = False
        self.lock = FolderLock(self.target, wait=wait)
        self.tmp = partial_path(self.target)

    def __enter__(self) -> Path | None:
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AttnlabError(f"cannot create {self.target.parent}: {err.strerror or err}") from None
        self.lock.acquire()
        try:
            if self.exists_ok is not None and self.target.exists() and self.exists_ok(self.target):
                self.skipped = True
                return None
            if self.tmp.exists():
                if not self.quiet:
                    print(f"attnlab: note: removing {self.tmp}, left by an earlier run that did not finish",
                          file=sys.stderr)
                shutil.rmtree(self.tmp)
            self.tmp.mkdir()
        except BaseException:
            self.lock.release()
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.skipped:
                return
            if exc_type is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return
            self.commit()
        finally:
            self.lock.release()

    def commit(self) -> None:
        old = None
        if self.target.exists() or self.target.is_symlink():
            if self.replace is None or not self.replace(self.target):
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise AttnlabError(f"{self.target} already exists; choose another folder")
            old = self.target.parent / f".{self.target.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
