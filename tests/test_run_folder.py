"""Run folders are owned: --overwrite replaces only runs and keeps a user's files; one trainer per folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from attnlab.cli import main
from attnlab.training.run_folder import LOCK_FILE, RunLock, is_run_folder

TINY = ["--preset", "gpt-nano", "--set", "context_length=16", "--batch-size", "4", "--steps", "3",
        "--set", "eval_every=3", "--set", "eval_iters=1", "--quiet", "--no-sample"]


def corpus(path):
    path.write_text("friends romans countrymen lend me your ears\n" * 60, encoding="utf-8")
    return path


def train(tmp_path, *extra):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "gpt", "--data", str(corpus(tmp_path / "corpus.txt")), *TINY, *extra])
    assert exit_info.value.code == 0


def error_of(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("attnlab: error:") == 1 and "Traceback" not in err
    return err


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    data = corpus(tmp_path / "corpus.txt")
    err = error_of(capsys, ["train", "gpt", "--data", str(data), *TINY, "--out", str(folder), "--overwrite"])
    assert "not an attnlab run folder" in err
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_overwrite_never_replaces_the_current_folder_or_the_corpus_folder(tmp_path, capsys, monkeypatch):
    data = corpus(tmp_path / "corpus.txt")
    monkeypatch.chdir(tmp_path)
    err = error_of(capsys, ["train", "gpt", "--data", str(data), *TINY, "--out", ".", "--overwrite"])
    assert "current folder" in err
    err = error_of(capsys, ["train", "gpt", "--data", str(data), *TINY, "--out", "..", "--overwrite"])
    assert "current folder" in err
    # a run folder that holds the corpus: even a real run is not replaced
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    inside = corpus(run / "text.txt")
    err = error_of(capsys, ["train", "gpt", "--data", str(inside), *TINY, "--out", str(run), "--overwrite"])
    assert "training data" in err
    assert inside.is_file() and data.is_file()


def test_overwrite_replaces_a_run_and_keeps_the_users_files(tmp_path, capsys):
    out = tmp_path / "run"
    train(tmp_path, "--out", str(out))
    assert is_run_folder(out)
    (out / "notes.md").write_text("my notes")
    first = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train(tmp_path, "--out", str(out), "--overwrite", "--seed", "2")
    assert (out / "notes.md").read_text() == "my notes"
    second = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(second) == len(first)  # replaced, not appended to
    assert "kept the files that are not attnlab's: notes.md" in capsys.readouterr().err
    assert not (out / LOCK_FILE).exists()


def test_a_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out):  # this process trains there
        err = error_of(capsys, ["train", "gpt", "--data", str(corpus(tmp_path / "c.txt")), *TINY, "--out", str(out)])
        assert "is in use" in err and str(os.getpid()) in err
        with pytest.raises(Exception, match="in use"):
            RunLock(out).acquire()
    assert not out.exists()  # the lock made the folder and left nothing behind
    # a lock left by a process that died
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out.mkdir()
    import socket

    (out / LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    train(tmp_path, "--out", str(out))
    assert "no longer running" in capsys.readouterr().err
    assert (out / "model.safetensors").is_file() and not (out / LOCK_FILE).exists()


def test_a_folder_holding_only_a_lock_counts_as_empty_for_overwrite(tmp_path):
    # under torchrun rank 0 locks the folder before the other ranks check it
    from attnlab.training.run_folder import check_overwritable

    out = tmp_path / "run"
    with RunLock(out):
        check_overwritable(out)  # no error: only the lock is there
        (out / "notes.txt").write_text("mine")
        with pytest.raises(Exception, match="not an attnlab run folder"):
            check_overwritable(out)
