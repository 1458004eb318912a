"""Checkpoints are all or nothing: a save cut short at any point, by a kill or by a full disk, leaves
the previous checkpoint published and resumable, and the next start clears what the save left.

A kill is simulated exactly: the run folder is copied at the instant before each file-system step
of a save (each rename, link, fsync, mkdir, unlink), which is what a SIGKILL at that instant leaves
on the disk; every copy must then resume. The slow test with real SIGKILLs is in test_resume.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from attnlab.checkpoint import load_tensors
from attnlab.data.batching import LanguageModelObjective
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.models.registry import load_model
from attnlab.training.run_folder import clear_run, is_owned
from attnlab.training.state import run_is_resumable
from attnlab.training.trainer import TrainConfig, Trainer

FS_STEPS = ("replace", "rename", "link", "fsync", "unlink", "rmdir", "mkdir", "truncate")


def ids(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 20, (n,), generator=torch.Generator().manual_seed(seed))


def trainer(run_dir: Path | None, init_seed: int = 0, **train) -> Trainer:
    torch.manual_seed(init_seed)
    model = GPT(GPTConfig(vocab_size=20, context_length=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1))
    objective = LanguageModelObjective(ids(2000, 0), ids(400, 1), 8, seed=0)
    values = dict(steps=6, batch_size=4, lr=3e-3, warmup_steps=2, eval_every=3, eval_iters=2, ckpt_every=2)
    return Trainer(model, objective, TrainConfig(**{**values, **train}), run_dir=run_dir, progress=False,
                   run_info={"kind": "test"})


def weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.raw_model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def pointer(run: Path) -> dict:
    return json.loads((run / "trainer_state.json").read_text())


def entries(run: Path) -> list[str]:
    """Every path under ``run``, relative, sorted."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*"))


def assert_clean(run: Path, published_only: bool = True) -> None:
    """No temporary file or folder anywhere; checkpoints/ holds the published checkpoint (and, if
    ``published_only`` is false, possibly a superseded complete one)."""
    hidden = [name for name in entries(run) if any(part.startswith(".") for part in Path(name).parts)]
    assert hidden == [], hidden
    named = pointer(run)["checkpoint"]
    folders = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert Path(named).name in folders
    if published_only:
        assert folders == [Path(named).name], folders
    else:
        assert all(f.startswith("step-") for f in folders), folders


def run_at_step_2(run: Path) -> tuple[Trainer, dict[int, dict[str, torch.Tensor]]]:
    """A run with its checkpoint of step 2 published and the trainer one step further (in memory);
    returns the trainer and the weights at steps 2 and 3."""
    t = trainer(run)
    for _ in range(2):
        t._log({"step": t.step + 1, "loss": t.train_step()[0]})
    t.save_checkpoint()
    at = {2: weights(t)}
    t._log({"step": 3, "loss": t.train_step()[0]})
    at[3] = weights(t)
    return t, at


class Snapshots:
    """Copy ``run`` before every file-system step (what a SIGKILL at that instant would leave)."""

    def __init__(self, run: Path, into: Path) -> None:
        self.run, self.into, self.busy, self.taken = run, into, False, []

    def wrap(self, name: str, real):
        def step(*args, **kwargs):
            if not self.busy:
                self.busy = True
                try:
                    copy = self.into / f"{len(self.taken):03d}-{name}"
                    shutil.copytree(self.run, copy, symlinks=True)
                    self.taken.append(copy)
                finally:
                    self.busy = False
            return real(*args, **kwargs)
        return step


class FailAt:
    """Raise ``error`` at the ``at``-th file-system step (counting from 0), once."""

    def __init__(self, at: int, error: BaseException) -> None:
        self.at, self.error, self.count, self.fired = at, error, 0, False

    def wrap(self, name: str, real):
        def step(*args, **kwargs):
            self.count += 1
            if self.count - 1 == self.at and not self.fired:
                self.fired = True
                raise self.error
            return real(*args, **kwargs)
        return step


def patch_fs(monkeypatch, hook) -> None:
    for name in FS_STEPS:
        monkeypatch.setattr(os, name, hook.wrap(name, getattr(os, name)))


# ---- the layout --------------------------------------------------------------------------------------


def test_a_finished_run_holds_one_published_checkpoint_and_the_model_files(tmp_path):
    old_umask = os.umask(0o022)
    try:
        result = trainer(tmp_path / "run").fit()
    finally:
        os.umask(old_umask)
    run = tmp_path / "run"
    state = pointer(run)
    assert state["checkpoint"] == "checkpoints/step-000006" and state["step"] == 6
    assert state["val_loss"] == result.val_loss
    folder = run / "checkpoints" / "step-000006"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.safetensors", "trainer_state.json", "trainer_state.safetensors"]
    assert json.loads((folder / "trainer_state.json").read_text())["step"] == 6
    assert_clean(run)
    assert os.path.samefile(run / "model.safetensors", folder / "model.safetensors")  # a hard link: no copy
    assert (run / "config.json").read_bytes() == (folder / "config.json").read_bytes()
    assert load_model(run) is not None and run_is_resumable(run)
    # the offset is the length of metrics.jsonl when the checkpoint was taken (the final one: all of it)
    assert state["metrics_offset"] == (run / "metrics.jsonl").stat().st_size
    # files get the permissions of any new file (umask 022), not a temporary file's 0600
    for name in ("model.safetensors", "config.json", "trainer_state.json", "run.json",
                 "checkpoints/step-000006/trainer_state.safetensors"):
        assert (run / name).stat().st_mode & 0o777 == 0o644, name


def test_overwrite_removes_the_checkpoints_and_what_a_killed_save_left(tmp_path):
    run = tmp_path / "run"
    trainer(run, steps=2).fit()
    (run / "checkpoints" / ".tmp-step-000004-0a1b2c3d").mkdir()
    (run / ".model.safetensors.0a1b2c3d.tmp").write_bytes(b"half")
    (run / ".tmpAbC123").write_bytes(b"safetensors' own temporary file")
    (run / "notes.txt").write_text("mine")
    assert all(is_owned(name) for name in ("checkpoints", "trainer_state.json", ".tmpAbC123",
                                           ".model.safetensors.0a1b2c3d.tmp"))
    assert clear_run(run) == ["notes.txt"]
    assert entries(run) == ["notes.txt"]


# ---- a kill at any instant -----------------------------------------------------------------------------


def test_a_kill_at_any_instant_of_a_save_leaves_a_checkpoint_that_resumes(tmp_path, monkeypatch):
    run = tmp_path / "run"
    t, at = run_at_step_2(run)
    snapshots = Snapshots(run, tmp_path / "killed")
    (tmp_path / "killed").mkdir()
    with monkeypatch.context() as m:
        patch_fs(m, snapshots)
        t.save_checkpoint()  # the save of step 3, copied before each of its steps
    assert len(snapshots.taken) > 15
    resumed_at = []
    for copy in snapshots.taken:
        assert run_is_resumable(copy), copy.name
        again = trainer(copy, init_seed=99)
        again.resume()
        resumed_at.append(again.step)
        assert again.step in (2, 3), copy.name
        assert same(weights(again), at[again.step]), copy.name  # never a mix of two checkpoints
        assert [r["step"] for r in again.history] == list(range(1, again.step + 1))
        assert_clean(copy)  # the next start removed what the killed save left
        assert same(load_tensors(copy / "model.safetensors"), at[again.step])  # generate/chat see it too
    # the kill landed both before and after the instant of publishing
    assert resumed_at[0] == 2 and resumed_at[-1] == 3 and resumed_at == sorted(resumed_at)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_save_that_fails_at_any_point_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch, error):
    at_step = 0
    outcomes = set()
    while True:
        run = tmp_path / f"run{at_step}"
        t, at = run_at_step_2(run)
        hook = FailAt(at_step, error)
        with monkeypatch.context() as m:
            patch_fs(m, hook)
            try:
                t.save_checkpoint()
                failure = None
            except (AttnlabError, KeyboardInterrupt) as err:
                failure = err
        if not hook.fired:
            break  # past the last step of a save: every point was tried
        at_step += 1
        published = pointer(run)["step"]
        if failure is None:  # the error hit the removal of the superseded checkpoint: ignored
            assert published == 3
        elif isinstance(error, OSError):
            message = str(failure)
            assert message.startswith("the disk is full: could not write ") and str(run) in message
            assert f"the last complete checkpoint (step {published}) in {run} is intact" in message
            assert message.endswith(f"continue the run with --resume {run}")
        outcomes.add(published)
        assert_clean(run, published_only=False)
        again = trainer(run, init_seed=99)
        again.resume()
        assert again.step == published and same(weights(again), at[published])
        assert_clean(run)
        shutil.rmtree(run)
    assert at_step > 15 and outcomes == {2, 3}


def test_a_full_disk_is_one_clear_error_from_the_command_line(tmp_path, monkeypatch, capsys):
    """The weights of the second checkpoint hit a full disk halfway (safetensors' own error)."""
    import safetensors.torch
    from safetensors import SafetensorError

    from attnlab.cli import main

    (tmp_path / "corpus.txt").write_text("friends romans countrymen lend me your ears\n" * 60, encoding="utf-8")
    real_save = safetensors.torch.save_file
    calls = []

    def filling_up(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 3:  # weights and state of step 2, then the weights of step 4
            Path(filename).write_bytes(b"\0" * 100)
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", filling_up)
    run = tmp_path / "run"
    args = ["train", "gpt", "--data", str(tmp_path / "corpus.txt"), "--preset", "gpt-nano", "--set",
            "context_length=16", "--batch-size", "4", "--steps", "6", "--set", "ckpt_every=2", "--set",
            "eval_every=6", "--set", "eval_iters=1", "--quiet", "--no-sample", "--out", str(run)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("attnlab: error:") == 1 and "Traceback" not in err
    assert "the disk is full: could not write" in err and "checkpoints/step-000004/model.safetensors" in err
    assert f"the last complete checkpoint (step 2) in {run} is intact" in err
    assert f"--resume {run}" in err
    assert pointer(run)["step"] == 2
    assert_clean(run)
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "gpt", "--resume", str(run), "--steps", "6", "--quiet", "--no-sample"])
    assert exit_info.value.code == 0
    assert pointer(run)["step"] == 6


# ---- the next start ----------------------------------------------------------------------------------


def test_the_next_start_removes_leftovers_and_cuts_the_metrics_back(tmp_path):
    run = tmp_path / "run"
    t, at = run_at_step_2(run)  # metrics.jsonl already holds step 3, logged after the checkpoint
    offset = pointer(run)["metrics_offset"]
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss": 1.0}\n{"step": 5, "lo')  # and a line cut short by the kill
    (run / "checkpoints" / ".tmp-step-000004-0a1b2c3d").mkdir()
    (run / "checkpoints" / ".tmp-step-000004-0a1b2c3d" / "model.safetensors").write_bytes(b"half")
    shutil.copytree(run / "checkpoints" / "step-000002", run / "checkpoints" / "step-000004")  # not published
    (run / ".trainer_state.json.0a1b2c3d.tmp").write_text("{")
    (run / ".tmpAbC123").write_bytes(b"x")
    (run / "notes.txt").write_text("mine")
    again = trainer(run, init_seed=5)
    again.resume()
    assert again.step == 2 and same(weights(again), at[2])
    assert (run / "metrics.jsonl").stat().st_size == offset
    assert [r["step"] for r in again.history] == [1, 2]
    assert entries(run) == ["checkpoints", "checkpoints/step-000002",
                            *[f"checkpoints/step-000002/{n}" for n in
                              ("config.json", "model.safetensors", "trainer_state.json", "trainer_state.safetensors")],
                            "config.json", "metrics.jsonl", "model.safetensors", "notes.txt", "run.json",
                            "trainer_state.json"]


def test_the_run_folder_model_files_catch_up_with_the_published_checkpoint(tmp_path):
    """Killed after publishing but before updating model.safetensors: the next start updates it."""
    from attnlab.checkpoint import save_model

    run = tmp_path / "run"
    t, at = run_at_step_2(run)
    t.save_checkpoint()  # step 3 published; now put back step 2's weights, as such a kill leaves them
    save_model(t.raw_model, tmp_path / "older", state=at[2], metadata={"step": "2"})
    (run / "model.safetensors").unlink()
    shutil.copyfile(tmp_path / "older" / "model.safetensors", run / "model.safetensors")
    again = trainer(run, init_seed=5)
    again.resume()
    assert again.step == 3
    assert same(load_tensors(run / "model.safetensors"), at[3])
    assert os.path.samefile(run / "model.safetensors", run / "checkpoints" / "step-000003" / "model.safetensors")


def test_a_second_save_of_the_same_step_replaces_the_first(tmp_path):
    run = tmp_path / "run"
    t, at = run_at_step_2(run)
    t.save_checkpoint()
    t.save_checkpoint()
    assert pointer(run)["checkpoint"] == "checkpoints/step-000003-2"
    assert_clean(run)
    again = trainer(run, init_seed=5)
    again.resume()
    assert again.step == 3 and same(weights(again), at[3])


def test_delete_weights_drops_the_checkpoints_of_a_finished_experiment_run(tmp_path):
    from attnlab.experiments.runner import delete_weights

    run = tmp_path / "run"
    trainer(run, steps=2).fit()
    (run / ".model.safetensors.0a1b2c3d.tmp").write_bytes(b"half")
    delete_weights(run)
    assert entries(run) == ["config.json", "loss.png", "metrics.jsonl", "run.json"]
    assert not run_is_resumable(run)


def test_a_broken_pointer_is_one_clear_error(tmp_path):
    run = tmp_path / "run"
    run_at_step_2(run)
    state = pointer(run)
    for bad, says in ((dict(state, checkpoint="../../etc"), "names no checkpoint folder"),
                      (dict(state, checkpoint="checkpoints/step-000099"), "which is missing"),
                      (dict(state, step=7), "is not the state of step 7")):
        (run / "trainer_state.json").write_text(json.dumps(bad))
        with pytest.raises(AttnlabError, match=says):
            trainer(run).resume()
        assert (run / "checkpoints" / "step-000002").is_dir()  # nothing is removed on a doubtful pointer


# ---- runs written before this layout -----------------------------------------------------------------


def write_old_layout(t: Trainer, run: Path) -> None:
    """The checkpoint as attnlab wrote it before checkpoints/ (its save_checkpoint, inlined):
    model.safetensors, trainer_state.safetensors and trainer_state.json at the top, one after another."""
    import dataclasses

    from attnlab.checkpoint import save_model, save_tensors
    from attnlab.io import write_json_atomic
    from attnlab.training.state import flatten_optimizer, rng_tensors

    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run / "run.json", t.run_info)
    optim_tensors, optim_meta = flatten_optimizer(t.optimizer.state_dict())
    save_model(t.raw_model, run, metadata={"step": str(t.step)})
    save_tensors(run / "trainer_state.safetensors", {**optim_tensors, **rng_tensors()})
    write_json_atomic(run / "trainer_state.json", {
        "step": t.step, "tokens": t.tokens, "elapsed": t.elapsed, "val_loss": t.last_val,
        "best_val_loss": t.best_val, "world_size": 1, "config": dataclasses.asdict(t.config),
        "optimizer": optim_meta})


def test_a_run_in_the_old_layout_resumes_exactly_and_moves_to_the_new_one(tmp_path):
    whole = trainer(None).fit()

    t = trainer(None)
    t.callbacks.append(lambda trainer, row: trainer.step == 3)  # stop at the evaluation of step 3
    assert t.fit().step == 3
    run = tmp_path / "old"
    write_old_layout(t, run)
    rows = [json.dumps(r) for r in t.history] + ['{"step": 4, "loss": 2.5}', '{"step": 5, "lo']
    (run / "metrics.jsonl").write_text("\n".join(rows))  # logged after the checkpoint, then killed
    assert run_is_resumable(run) and not (run / "checkpoints").exists()

    again = trainer(run, init_seed=42)
    again.resume()
    assert again.step == 3 and [r["step"] for r in again.history] == [r["step"] for r in t.history]
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [
        r["step"] for r in t.history]
    result = again.fit()
    assert result.step == 6 and result.val_loss == whole.val_loss  # bitwise
    assert pointer(run)["checkpoint"] == "checkpoints/step-000006"
    assert not (run / "trainer_state.safetensors").exists()  # the old layout's state is gone
    assert_clean(run)
