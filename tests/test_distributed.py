"""Data-parallel training under torchrun on the CPU (gloo): DDP, FSDP, and resuming across rank counts.

Each run is a real ``python -m torch.distributed.run --nproc_per_node 2 -m attnlab train gpt``. With
``ATTNLAB_DIST_DEBUG=DIR`` every rank writes, per step, a fingerprint of the batch slice it trained
on and of the full parameters after the step (attnlab.training.distributed.debug_record).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.training import distributed as dist_utils

WORDS = ("friends romans countrymen lend me your ears i come to bury caesar not to praise him the evil that "
         "men do lives after them good is oft interred with their bones so let it be with brutus noble hath "
         "told you was ambitious if were grievous fault and grievously answer").split()

# constant learning rate without warm-up: a run cut at step 3 and resumed to 6 follows the same schedule
COMMON = ["--preset", "gpt-nano", "--batch-size", "8", "--lr", "1e-2", "--set", "dropout=0",
          "--set", "warmup_steps=0", "--set", "schedule=constant", "--set", "eval_every=3",
          "--set", "eval_iters=2", "--set", "context_length=32", "--quiet", "--no-sample"]


# the same for a recurrent LM trained with truncated BPTT (its carried states are per stream)
RECURRENT = ["--preset", "tiny", "--batch-size", "8", "--lr", "1e-2", "--set", "warmup_steps=0",
             "--set", "schedule=constant", "--set", "eval_every=3", "--set", "eval_iters=2", "--set", "bptt=16",
             "--quiet", "--no-sample"]


def write_corpus(path: Path) -> Path:
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."
             for _ in range(500)]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def start_training(args: list[str], cwd: Path, nproc: int = 1, debug: Path | None = None,
                   kind: str = "gpt") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop(dist_utils.DEBUG_ENV, None)
    if debug is not None:
        env[dist_utils.DEBUG_ENV] = str(debug)
    launcher = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    common = COMMON if kind == "gpt" else RECURRENT
    cmd = [*launcher, "-m", "attnlab", "train", kind, "--data", "corpus.txt", *common, *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, f"{' '.join(process.args)}\n{out}\n{err[-3000:]}"


def attnlab_train(args: list[str], cwd: Path, nproc: int = 1, debug: Path | None = None, kind: str = "gpt") -> None:
    finish(start_training(args, cwd, nproc, debug, kind))


def metrics(run: Path) -> tuple[dict[int, float], dict[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r["loss"] for r in rows if "loss" in r}
    val = {r["step"]: r["val_loss"] for r in rows if "val_loss" in r}
    return train, val


def fingerprints(folder: Path) -> dict[int, dict[int, dict]]:
    """{rank: {step: row}} from the debug files."""
    out: dict[int, dict[int, dict]] = {}
    for path in folder.glob("rank*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            out.setdefault(row["rank"], {})[row["step"]] = row
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    write_corpus(root / "corpus.txt")
    return root


@pytest.fixture(scope="module")
def reference(workdir) -> subprocess.Popen:
    """The reference: one process, 6 steps (started at once; it runs beside the first torchrun)."""
    return start_training(["--steps", "6", "--out", "single"], workdir)


def wait_for(reference: subprocess.Popen) -> None:
    if reference.returncode is None:
        finish(reference)


def check_data_parallel_run(workdir: Path, run: str, debug: Path, reference: subprocess.Popen) -> None:
    wait_for(reference)
    ranks = fingerprints(debug)
    assert sorted(ranks) == [0, 1]
    assert sorted(ranks[0]) == sorted(ranks[1]) == [1, 2, 3]
    for step in (1, 2, 3):
        a, b = ranks[0][step], ranks[1][step]
        assert a["world_size"] == b["world_size"] == 2
        assert a["batch_rows"] == b["batch_rows"] == 4  # the global batch of 8, halved
        assert a["batch"] != b["batch"], f"step {step}: both ranks trained on the same data"
        assert a["params"] == b["params"], f"step {step}: the ranks' parameters drifted apart"
    single_train, single_val = metrics(workdir / "single")
    train, val = metrics(workdir / run)
    assert sorted(train) == [1, 2, 3]
    for step, loss in train.items():
        assert abs(loss - single_train[step]) <= 1e-5, (step, loss, single_train[step])
    assert abs(val[3] - single_val[3]) <= 1e-5


def check_resumes_in_one_process(workdir: Path, run: str) -> None:
    state = json.loads((workdir / run / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["world_size"] == 2
    attnlab_train(["--resume", run, "--steps", "6"], workdir)
    _, single_val = metrics(workdir / "single")
    train, val = metrics(workdir / run)
    assert sorted(train) == [1, 2, 3, 4, 5, 6]
    assert abs(val[6] - single_val[6]) <= 1e-5, (val[6], single_val[6])


def test_ddp_two_ranks_match_one_process_and_resume_with_one(workdir, reference):
    debug = workdir / "debug-ddp"
    attnlab_train(["--steps", "3", "--out", "ddp"], workdir, nproc=2, debug=debug)
    check_data_parallel_run(workdir, "ddp", debug, reference)
    check_resumes_in_one_process(workdir, "ddp")


@pytest.mark.slow
def test_fsdp_two_ranks_match_one_process_and_save_the_same_format(workdir, reference):
    debug = workdir / "debug-fsdp"
    attnlab_train(["--steps", "3", "--out", "fsdp", "--fsdp"], workdir, nproc=2, debug=debug)
    check_data_parallel_run(workdir, "fsdp", debug, reference)
    from attnlab.models.registry import load_model

    model = load_model(workdir / "fsdp")  # whole weights, loadable without torchrun
    assert model.config.n_layer == 3
    check_resumes_in_one_process(workdir, "fsdp")


@pytest.mark.slow
def test_fsdp_resumes_a_one_process_checkpoint(workdir, reference):
    wait_for(reference)
    attnlab_train(["--steps", "3", "--out", "one"], workdir)
    attnlab_train(["--resume", "one", "--steps", "6", "--fsdp"], workdir, nproc=2)
    _, single_val = metrics(workdir / "single")
    _, val = metrics(workdir / "one")
    assert abs(val[6] - single_val[6]) <= 1e-5


# ---- in-process pieces (no torchrun) -------------------------------------------------------------
def test_single_process_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = dist_utils.setup("cpu")
    assert not info.enabled and info.is_main and info.world_size == 1
    model = torch.nn.Linear(3, 2)
    assert dist_utils.wrap(model, info, fsdp=True) is model
    assert dist_utils.full_state_dict(model, model, info) is None
    with dist_utils.maybe_no_sync(model, info, sync=False):
        pass
    assert dist_utils.mean_across_ranks(2.5, info) == 2.5


def test_unknown_or_missing_devices_are_clear_errors():
    with pytest.raises(AttnlabError, match="unknown device"):
        dist_utils.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(AttnlabError, match="no CUDA GPU"):
            dist_utils.resolve_device("cuda")


def test_world_size_without_rank_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(AttnlabError, match="torchrun"):
        dist_utils.setup("cpu")


def test_fingerprint_sees_one_changed_bit():
    a = torch.arange(12, dtype=torch.float32)
    b = a.clone()
    b[5] = torch.nextafter(b[5], torch.tensor(100.0))
    assert dist_utils.tensor_fingerprint([a]) == dist_utils.tensor_fingerprint([a.clone()])
    assert dist_utils.tensor_fingerprint([a]) != dist_utils.tensor_fingerprint([b])


def test_batch_that_does_not_split_over_ranks_is_a_clear_error():
    info = dist_utils.DistInfo(rank=0, world_size=4, enabled=True)
    dist_utils.check_batch_split(16, 2, info)
    with pytest.raises(AttnlabError, match="multiple of 8"):
        dist_utils.check_batch_split(12, 2, info)


def test_ddp_lstm_saves_every_ranks_carried_states(workdir):
    """Truncated BPTT under 2 ranks: each rank carries the hidden states of its own streams (rows of the
    global batch). The checkpoint must hold every rank's rows, so that a 1-process resume goes on
    exactly like a 1-process run that was never cut; with rank 0's rows alone, half the streams would
    restart from zeros at step 4."""
    single = start_training(["--steps", "6", "--out", "lstm-single"], workdir, kind="lstm")
    attnlab_train(["--steps", "3", "--out", "lstm-ddp"], workdir, nproc=2, kind="lstm")
    finish(single)
    attnlab_train(["--resume", "lstm-ddp", "--steps", "6"], workdir, kind="lstm")
    single_train, single_val = metrics(workdir / "lstm-single")
    train, val = metrics(workdir / "lstm-ddp")
    assert sorted(train) == [1, 2, 3, 4, 5, 6]
    for step, loss in train.items():
        assert abs(loss - single_train[step]) <= 1e-5, (step, loss, single_train[step])
    assert abs(val[6] - single_val[6]) <= 1e-5, (val[6], single_val[6])
