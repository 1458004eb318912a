"""Callbacks on every step, evaluation and checkpoint; --log csv / samples; a Trainer that saves its tokenizer."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import attnlab
from attnlab.data.batching import LanguageModelObjective
from attnlab.data.tokenizers import make_tokenizer
from attnlab.models.gpt import GPT
from attnlab.training.callbacks import Callback
from attnlab.training.trainer import TrainConfig, Trainer

TINY = dict(preset="gpt-nano", steps=6, batch_size=4, quiet=True, no_sample=True,
            set={"context_length": 16, "eval_every": 3, "eval_iters": 1, "ckpt_every": 3})


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_step(self, trainer, row):
        self.events.append(("step", row["step"]))

    def on_eval(self, trainer, row):
        self.events.append(("eval", row["step"]))

    def on_checkpoint(self, trainer, step):
        self.events.append(("checkpoint", step))

    def on_end(self, trainer, result):
        self.events.append(("end", result.step))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("friends romans countrymen lend me your ears\n" * 60, encoding="utf-8")
    return str(path)


def test_hooks_fire_on_every_step_evaluation_and_checkpoint(tmp_path, corpus):
    recorder, plain = Recorder(), []
    attnlab.train("gpt", data=corpus, out=str(tmp_path / "run"), callbacks=[recorder, lambda t, row: plain.append(row)],
                  **TINY)
    assert [s for e, s in recorder.events if e == "step"] == [1, 2, 3, 4, 5, 6]
    assert [s for e, s in recorder.events if e == "eval"] == [3, 6]
    assert [s for e, s in recorder.events if e == "checkpoint"] == [3, 6]
    assert recorder.events[-1] == ("end", 6)
    assert [row["step"] for row in plain] == [3, 6]  # a plain function is an evaluation hook


def test_csv_and_samples_logs_and_the_run_is_unchanged_by_them(tmp_path, corpus):
    logged = attnlab.train("gpt", data=corpus, out=str(tmp_path / "logged"), log="csv,samples", **TINY)
    plain = attnlab.train("gpt", data=corpus, out=str(tmp_path / "plain"), log="none", **TINY)
    rows = list(csv.DictReader((logged.path / "metrics.csv").open()))
    assert [r["step"] for r in rows if r["val_loss"]] == ["3", "6"] and len(rows) == 8
    samples = [json.loads(line) for line in (logged.path / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [3, 6] and all(s["text"] for s in samples)
    assert not (plain.path / "samples.jsonl").exists() and not (plain.path / "metrics.csv").exists()
    assert [r for r in logged.metrics if "val_loss" in r][-1]["val_loss"] == \
        [r for r in plain.metrics if "val_loss" in r][-1]["val_loss"]


def test_unknown_logger_is_an_error_before_anything_is_written(tmp_path, corpus):
    with pytest.raises(attnlab.AttnlabError, match="unknown logger"):
        attnlab.train("gpt", data=corpus, out=str(tmp_path / "x"), log="csv,nope", **TINY)
    assert not (tmp_path / "x").exists()


def test_a_trainer_given_a_tokenizer_writes_a_run_that_generates(tmp_path):
    text = "to be or not to be that is the question " * 40
    tokenizer = make_tokenizer("char", text)
    ids = torch.tensor(tokenizer.encode(text))
    model = GPT.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, context_length=16)
    config = TrainConfig(steps=2, batch_size=4, eval_every=2, eval_iters=1)
    Trainer(model, LanguageModelObjective(ids, ids, 16), config, run_dir=tmp_path / "run", progress=False,
            tokenizer=tokenizer).fit()
    run = attnlab.load_run(tmp_path / "run")
    assert isinstance(run.generate("to be", max_new_tokens=5, seed=0), str)
