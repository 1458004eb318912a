"""Training from prepared token shards: the same run as from the text, under torchrun too, and a cache that
skips tokenization the second time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnlab.cli import main

ARGS = ["--preset", "gpt-nano", "--batch-size", "8", "--lr", "1e-2", "--set", "dropout=0",
        "--set", "warmup_steps=0", "--set", "schedule=constant", "--set", "eval_every=3", "--set", "eval_iters=2",
        "--set", "context_length=32", "--steps", "3", "--quiet", "--no-sample"]


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    return stop.value.code


def val_losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in rows if "val_loss" in r]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    words = "friends romans countrymen lend me your ears i come to bury caesar not to praise him".split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(3 + i % 9)) for i in range(700)]
    (root / "corpus.txt").write_text("\n".join(lines), encoding="utf-8")
    return root


def test_a_prepared_folder_trains_the_same_run_as_its_text(work, monkeypatch):
    monkeypatch.chdir(work)
    assert cli("prepare", "corpus.txt", "--tokenizer", "char", "--out", "shards") == 0
    assert cli("train", "gpt", "--data", "corpus.txt", *ARGS, "--out", "from-text") == 0
    assert cli("train", "gpt", "--data", "shards", *ARGS, "--out", "from-shards") == 0
    assert val_losses(work / "from-shards") == val_losses(work / "from-text")
    run = json.loads((work / "from-shards" / "run.json").read_text())
    assert run["prepared"] == "shards" and run["train_tokens"] > 0


def test_the_second_run_of_a_text_reuses_its_cached_shards(work, monkeypatch):
    monkeypatch.chdir(work)
    cache = Path(os.environ["ATTNLAB_CACHE"]) / "prepared"
    assert cli("train", "gpt", "--data", "corpus.txt", *ARGS, "--out", "again-1") == 0
    entries = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert cli("train", "gpt", "--data", "corpus.txt", *ARGS, "--out", "again-2") == 0
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == entries  # nothing prepared again
    assert val_losses(work / "again-1") == val_losses(work / "again-2")


def test_a_flag_that_contradicts_the_prepared_folder_is_one_error(work, monkeypatch, capsys):
    monkeypatch.chdir(work)
    if not (work / "shards").exists():
        assert cli("prepare", "corpus.txt", "--tokenizer", "char", "--out", "shards") == 0
    assert cli("train", "gpt", "--data", "shards", *ARGS, "--tokenizer", "bpe", "--out", "bad") == 2
    err = capsys.readouterr().err
    assert err.count("attnlab: error:") == 1 and "prepared with the char tokenizer" in err
    assert not (work / "bad").exists()


def test_two_ranks_over_the_same_shards_match_one_process(work):
    if not (work / "shards").exists():
        assert subprocess.run([sys.executable, "-m", "attnlab", "prepare", "corpus.txt", "--out", "shards"],
                              cwd=work).returncode == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "attnlab", "train", "gpt", "--data", "shards", *ARGS,
                             "--out", "one"], cwd=work, env=env, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-2000:]
    ranks = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            "-m", "attnlab", "train", "gpt", "--data", "shards", *ARGS, "--out", "two"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    for a, b in zip(val_losses(work / "one"), val_losses(work / "two"), strict=True):
        assert abs(a - b) <= 1e-5


def test_truncated_bptt_windows_from_shards_equal_those_from_a_tensor(work, monkeypatch):
    from attnlab.data.lm_data import load_lm_data
    from attnlab.recipes.tbptt import TBPTTObjective

    monkeypatch.chdir(work)
    data = load_lm_data("corpus.txt")
    mapped = TBPTTObjective(data.train, data.val, 16)
    loaded = TBPTTObjective(data.train.to_tensor(), data.val.to_tensor(), 16)
    for split, step in (("train", 0), ("train", 5), ("val", -1)):
        a, b = mapped.batch(split, step, 4), loaded.batch(split, step, 4)
        assert all(torch.equal(a[k], b[k]) for k in a)
