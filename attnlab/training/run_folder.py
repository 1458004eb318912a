"""Run folders are owned: what ``--overwrite`` may replace, and one trainer at a time per folder.

A run folder holds files attnlab wrote (:data:`RUN_FILES`, ``*tokenizer.json``, the ``checkpoints``
folder with the temporary folders of a save in progress inside it, hidden temporary files) and
possibly files a user put there. The promises:

- ``--overwrite`` replaces a folder only if it is empty or is an attnlab run, and then removes only
  attnlab's own files: a user's file in a run folder is kept. It never touches the current
  directory, a parent of it, or a folder that holds the training corpus.
- While a process trains in a folder it holds ``.attnlab.lock`` (created with ``O_CREAT | O_EXCL``,
  so two processes can never both take it) naming its pid and host. A second process gets one
  clear error; a lock left by a process that no longer runs (SIGKILL, power cut) is reported and
  taken over.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.io import is_temp_name

LOCK_FILE = ".attnlab.lock"
CHECKPOINTS_DIR = "checkpoints"  # checkpoints/step-000250/: one complete checkpoint (attnlab.training.state)
STATE_JSON = "trainer_state.json"  # names the published checkpoint
STATE_TENSORS = "trainer_state.safetensors"  # in a checkpoint folder (older runs: at the top)
# every file or folder name attnlab writes into a run folder (tokenizers match *tokenizer.json; the hidden
# temporary files of the atomic writer, ".NAME.<random>.tmp", are attnlab's too: see is_owned)
RUN_FILES = frozenset({
    "config.json", "model.safetensors", STATE_JSON, STATE_TENSORS, "run.json",
    "metrics.jsonl", "loss.png", "spec.json", "result.json", "checkpoint", CHECKPOINTS_DIR, "config.yaml",
    "samples.jsonl", "metrics.csv", "tensorboard", LOCK_FILE,
})
MARKERS = ("run.json", STATE_JSON, "spec.json")  # any one of these: the folder is a run


def is_owned(name: str) -> bool:
    """Whether ``name`` (an entry of a run folder) is a file attnlab writes there."""
    if name in RUN_FILES or name.endswith("tokenizer.json") or is_temp_name(name):
        return True
    return name.startswith(".") and (".tmp-" in name or name.startswith(".checkpoint"))


def is_run_folder(path: Path) -> bool:
    """A folder attnlab trained in: it has run.json, trainer state or an experiment spec, or an attnlab
    ``config.json``."""
    if any((path / marker).is_file() for marker in MARKERS):
        return True
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == "attnlab"
    except (OSError, ValueError, AttributeError):
        return False


def check_overwritable(run_dir: Path, protect: Iterable[str | Path] = ()) -> None:
    """Raise :class:`AttnlabError` unless ``--overwrite`` may replace ``run_dir``.

    ``protect`` lists paths (the corpus) that must not lie inside the folder.
    """
    target = run_dir.resolve()
    here = Path.cwd().resolve()
    if here == target or here.is_relative_to(target):
        raise AttnlabError(f"--overwrite will not replace {run_dir}: it is the current folder or one above it; "
                           "give --out a run folder such as runs/NAME")
    for item in protect:
        if item and Path(item).exists() and Path(item).resolve().is_relative_to(target):
            raise AttnlabError(f"--overwrite will not replace {run_dir}: it holds the training data {item}; "
                               "give --out a folder of its own")
    if not run_dir.is_dir() or not any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        return  # empty, or holding only the lock of the process that trains here (another rank's view)
    if not is_run_folder(run_dir):
        names = sorted(p.name for p in run_dir.iterdir())
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise AttnlabError(f"--overwrite will not replace {run_dir}: it is not an attnlab run folder (it holds "
                           f"{shown}); --overwrite only replaces runs: choose another --out")


def clear_run(run_dir: Path) -> list[str]:
    """Remove attnlab's own files from ``run_dir`` (not the lock); returns the names of the files kept."""
    kept = []
    if not run_dir.is_dir():
        return kept
    for child in sorted(run_dir.iterdir()):
        if child.name == LOCK_FILE:
            continue
        if not is_owned(child.name):
            kept.append(child.name)
        elif child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return kept


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


class RunLock:
    """Hold ``run_dir/.attnlab.lock`` while training; ``with RunLock(path):`` or acquire()/release()."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.held = False
        self.created_dir = False

    def _owner(self) -> dict:
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
            return owner if isinstance(owner, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        if not self.run_dir.exists():
            self.created_dir = True
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AttnlabError(f"cannot create the run folder {self.run_dir}: {err.strerror or err}") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_stale()
                continue
            except OSError as err:
                raise AttnlabError(f"cannot lock the run folder {self.run_dir}: {err.strerror or err}") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(me) + "\n")
            self.held = True
            return self
        raise AttnlabError(f"could not lock the run folder {self.run_dir}: another process keeps taking it")

    def _check_stale(self) -> None:
        """The lock exists: refuse if its owner runs; remove it (and say so) if its owner is gone."""
        owner = self._owner()
        pid, host = owner.get("pid"), owner.get("host")
        if not owner:  # being written right now, or garbage: give a writer a moment, then judge
            time.sleep(0.2)
            owner = self._owner()
            pid, host = owner.get("pid"), owner.get("host")
        same_host = host == socket.gethostname()
        if isinstance(pid, int) and same_host and not _pid_alive(pid) or (owner == {} and self.path.exists()):
            print(f"attnlab: note: {self.path} was left by process {pid if pid else '?'}, which is no longer "
                  "running (killed?); taking it over", file=sys.stderr)
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            return
        where = f"process {pid}" + ("" if same_host else f" on host {host}")
        raise AttnlabError(f"{self.run_dir} is in use: {where} is training in it (lock file {self.path}); wait "
                           "for it to finish, or choose another --out" +
                           ("" if same_host else "; delete the lock file if that process is gone"))

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._owner().get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        if self.created_dir:  # nothing was written: leave no empty folder behind
            try:
                self.run_dir.rmdir()
            except OSError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
