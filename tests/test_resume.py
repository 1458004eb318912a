"""Exact resume: a run killed with SIGKILL mid-training and resumed ends bit for bit where an
uninterrupted run with the same seed ends (CPU); with a checkpoint every step and twenty kills at
random instants (many inside a save) too."""

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


KILLS = 20
EVERY_STEP = ["--preset", "gpt-nano", "--set", "context_length=16", "--batch-size", "4", "--steps", "300",
              "--set", "ckpt_every=1", "--set", "eval_every=100", "--set", "eval_iters=2", "--seed", "3",
              "--set", "dropout=0.1", "--quiet", "--no-sample"]


def every_step(*extra: str) -> list[str]:
    return [sys.executable, "-m", "attnlab", "train", "gpt", "--data", "corpus.txt", *EVERY_STEP, *extra]


def metrics_size(run: Path) -> int:
    try:
        return (run / "metrics.jsonl").stat().st_size
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_twenty_sigkills_at_random_instants_resume_bitwise(tmp_path):
    """A checkpoint every step, so most kills land in or near a save; each time the run resumes."""
    write_corpus(tmp_path / "corpus.txt")
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    whole_run = subprocess.Popen(every_step("--out", "whole"), cwd=tmp_path, env=env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "killed"
    resumed_from, mid_save = [], 0
    for kill in range(KILLS):
        args = every_step("--out", "killed") if kill == 0 else every_step("--resume", "killed")
        log = open(tmp_path / f"stderr-{kill}.txt", "w")  # noqa: SIM115 (closed below)
        victim = subprocess.Popen(args, cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=log)
        start_size, deadline = metrics_size(run), time.monotonic() + 120
        # wait until this process trains (and, the first time, has a checkpoint to resume), then a random instant
        while victim.poll() is None and time.monotonic() < deadline and (
                metrics_size(run) <= start_size or not checkpoint_step(run)):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.08))
        victim.send_signal(signal.SIGKILL)
        code = victim.wait(timeout=30)
        log.close()
        err = (tmp_path / f"stderr-{kill}.txt").read_text()
        assert code == -signal.SIGKILL, f"kill {kill}: the run ended by itself ({code}): {err[-2000:]}"
        assert "Traceback" not in err and "attnlab: error" not in err, f"kill {kill}: {err[-2000:]}"
        resumed_from.append(checkpoint_step(run))
        left = [p.name for p in (run / "checkpoints").iterdir()] + [p.name for p in run.glob(".*.tmp")]
        mid_save += len(left) > 1  # a temporary or a second checkpoint folder: the kill cut a save short
    assert resumed_from[-1] < 300, "the run was nearly done before the last kill; give it more steps"
    assert mid_save >= KILLS // 4, f"only {mid_save} kills landed inside a save"

    final = subprocess.run(every_step("--resume", "killed"), cwd=tmp_path, env=env(), capture_output=True,
                           text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    _, whole_err = whole_run.communicate(timeout=600)
    assert whole_run.returncode == 0, whole_err[-2000:]

    whole, again = final_state(tmp_path / "whole"), final_state(run)
    assert again["step"] == whole["step"] == 300
    assert again["val_loss"] == whole["val_loss"], resumed_from  # bitwise
    a = load_tensors(tmp_path / "whole" / "model.safetensors")
    b = load_tensors(run / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), resumed_from
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 301))
    assert [r["val_loss"] for r in rows if "val_loss" in r] == [
        json.loads(line)["val_loss"] for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
        if "val_loss" in line]
    # nothing a killed save left behind remains: one checkpoint, no temporary files
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000300"]
    assert not [p for p in run.rglob(".*")]


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
