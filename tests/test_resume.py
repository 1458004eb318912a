"""Exact resume: a run killed with SIGKILL mid-training and resumed ends bit for bit where an
uninterrupted run with the same seed ends (CPU)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.checkpoint import load_tensors

STEPS = 120
ARGS = ["--preset", "gpt-nano", "--set", "context_length=32", "--batch-size", "8", "--steps", str(STEPS),
        "--set", "ckpt_every=10", "--set", "eval_every=80", "--set", "eval_iters=2", "--seed", "7",
        "--set", "dropout=0.1",  # dropout draws from the RNG: resume must restore the RNG exactly
        "--quiet", "--no-sample"]


def write_corpus(path: Path) -> None:
    rng = random.Random(1)
    words = "o judgement thou art fled to brutish beasts and men have lost their reason bear with me".split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 10))) for _ in range(400)]
    path.write_text("\n".join(lines), encoding="utf-8")


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "attnlab", "train", "gpt", "--data", "corpus.txt", *ARGS, *extra]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def final_state(run: Path) -> dict:
    return json.loads((run / "trainer_state.json").read_text())


def checkpoint_step(run: Path) -> int:
    try:
        return int(final_state(run)["step"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_sigkilled_run_resumes_bitwise(tmp_path):
    write_corpus(tmp_path / "corpus.txt")
    # the uninterrupted run and the one to kill start together (one core each)
    whole_run = subprocess.Popen(command("--out", "whole"), cwd=tmp_path, env=env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(command("--out", "killed"), cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while checkpoint_step(tmp_path / "killed") < 20 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = checkpoint_step(tmp_path / "killed")
    assert 20 <= killed_at < STEPS, f"killed at checkpoint {killed_at}; expected mid-training"

    resumed = subprocess.run(command("--resume", "killed"), cwd=tmp_path, env=env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, whole_err = whole_run.communicate(timeout=300)
    assert whole_run.returncode == 0, whole_err[-2000:]
    assert f"from step {killed_at}" in resumed.stderr

    whole, again = final_state(tmp_path / "whole"), final_state(tmp_path / "killed")
    assert again["step"] == whole["step"] == STEPS
    assert again["val_loss"] == whole["val_loss"]  # bitwise: the JSON holds the full float
    a = load_tensors(tmp_path / "whole" / "model.safetensors")
    b = load_tensors(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    # the metrics of the resumed run are those of the whole run (the killed tail was dropped)
    rows = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == list(range(1, STEPS + 1))


def cli_error(args: list[str], capsys) -> str:
    """Run ``attnlab ARGS`` in this process; it must exit 2 with one error line and no traceback."""
    from attnlab.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("attnlab: error:") == 1 and "Traceback" not in err
    return err


def test_resume_with_nothing_to_resume_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = cli_error(["train", "gpt", "--resume", str(tmp_path / "empty")], capsys)
    assert "nothing to resume" in err
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize("bad", [["n_embd=128", "n_head=5"], ["n_layer=0"], ["no_such_field=1"]])
def test_bad_model_settings_fail_before_anything_is_written(tmp_path, capsys, bad):
    write_corpus(tmp_path / "corpus.txt")
    sets = [arg for item in bad for arg in ("--set", item)]
    out = tmp_path / "bad"
    data = str(tmp_path / "corpus.txt")
    cli_error(["train", "gpt", "--data", data, "--out", str(out), *ARGS, *sets], capsys)
    assert not out.exists()
