"""The session: one merge of the training config, resume that keeps the run, replay from config.yaml."""

from __future__ import annotations

import json

import pytest
import yaml

from attnlab.cli import main
from attnlab.training.session import RunOptions, merge_train_config, split_sets

TINY = ["--preset", "gpt-nano", "--set", "context_length=16", "--batch-size", "4", "--steps", "6",
        "--set", "eval_every=3", "--set", "eval_iters=1", "--quiet", "--no-sample"]


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("friends romans countrymen lend me your ears\n" * 60, encoding="utf-8")
    return str(path)


def val_losses(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in rows if "val_loss" in r]


def test_merge_order_defaults_recipe_preset_flags_set():
    from attnlab.recipes import get_recipe

    recipe = get_recipe("gpt")
    run = RunOptions(lr=5e-3, steps=50)
    config = merge_train_config(recipe, "gpt-speedrun", run, {"warmup_steps": 7})
    assert config.optimizer == "muon"  # the preset's
    assert config.lr == 5e-3 and config.steps == 50  # flags beat the preset
    assert config.warmup_steps == 7  # --set beats everything
    assert config.beta2 == 0.99 and config.eval_every == 250  # the recipe's
    assert config.grad_clip == 1.0  # TrainConfig's own default


def test_set_values_are_parsed_by_their_fields_type():
    from attnlab.errors import AttnlabError
    from attnlab.models.gpt import GPTConfig
    from attnlab.models.recurrent import LSTMLMConfig

    model, train = split_sets({"bias": "false", "n_layer": "3", "lr": "2e-3", "min_lr": "none"}, GPTConfig)
    assert model == {"bias": False, "n_layer": 3} and train == {"lr": 0.002, "min_lr": None}
    for bad in ({"bias": "flase"}, {"lr": "fast"}, {"lr": "nan"}, {"n_layer": "2.5"}, {"nope": "1"}):
        with pytest.raises(AttnlabError):
            split_sets(bad, GPTConfig)
    assert split_sets({"bptt": "32"}, LSTMLMConfig)[0] == {"context_length": 32}  # the old name still works


def test_resume_keeps_the_runs_settings(tmp_path, corpus, capsys):
    out = str(tmp_path / "run")
    assert cli("train", "gpt", "--data", corpus, *TINY, "--out", out) == 0
    for flag in (["--lr", "0.5"], ["--batch-size", "8"], ["--seed", "2"], ["--steps", "3"],
                 ["--preset", "gpt-micro"], ["--set", "dropout=0.3"], ["--tokenizer", "bpe"]):
        assert cli("train", "gpt", "--resume", out, *flag) == 2
        err = capsys.readouterr().err
        assert "contradicts the run" in err and err.count("attnlab: error:") == 1, (flag, err)
    assert cli("train", "gpt", "--resume", out, "--steps", "9", "--quiet", "--no-sample") == 0
    assert "extending the run from 6 to 9 steps" in capsys.readouterr().err
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    assert state["args"]["data"] == corpus


def test_config_yaml_replays_the_run_bit_for_bit(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("train", "gpt", "--data", corpus, *TINY, "--set", "dropout=0.1", "--out", "x") == 0
    record = yaml.safe_load((tmp_path / "x" / "config.yaml").read_text())
    assert record["kind"] == "gpt" and record["train"]["steps"] == 6 and record["options"]["data"] == corpus
    assert cli("train", "--config", "x/config.yaml", "--out", "y") == 0
    assert val_losses(tmp_path / "y") == val_losses(tmp_path / "x")
    assert cli("train", "gpt", "--config", "x/config.yaml", "--out", "z", "--steps", "3") == 0  # flags win
    assert len(val_losses(tmp_path / "z")) == 1


def test_config_file_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: gpt\ntrain: [1, 2]\n")
    assert cli("train", "--config", str(bad)) == 2
    assert "not an attnlab run configuration" in capsys.readouterr().err
    bad.write_text("kind: lstm\n")
    assert cli("train", "gpt", "--config", str(bad)) == 2
    assert "describes a 'lstm' run" in capsys.readouterr().err


@pytest.mark.parametrize("kind,steps,batch", [("gpt", 1400, 4), ("lstm", 2000, 16), ("transformer", 3000, 64)])
def test_help_shows_the_kinds_real_defaults_presets_and_examples(kind, steps, batch, capsys):
    assert cli("train", kind, "--help") == 0
    text = capsys.readouterr().out
    assert f"optimizer steps (default: {steps})" in text.replace("\n", " ").replace("  ", " ") or \
        f"(default: {steps})" in text
    assert f"(default: {batch})" in text.replace("\n", " ")
    assert "parameters;" in text and "(default)" in text and "examples:" in text
    assert "the seed" not in text and "issue" not in text


def test_default_preset_is_recorded_and_runs_from_before_the_change_resume_with_theirs(tmp_path, corpus):
    from attnlab.recipes import get_recipe

    recipe = get_recipe("gpt")
    assert recipe.default_preset == "gpt-play" and recipe.former_default_preset == "gpt-jc"
    short = ["--set", "context_length=16", "--batch-size", "4", "--set", "eval_every=2", "--set", "eval_iters=1",
             "--quiet", "--no-sample"]
    new = tmp_path / "new"
    assert cli("train", "gpt", "--data", corpus, "--steps", "2", *short, "--out", str(new)) == 0
    assert json.loads((new / "run.json").read_text())["args"]["preset"] == "gpt-play"
    assert yaml.safe_load((new / "config.yaml").read_text().split("\n", 2)[2])["run"]["preset"] == "gpt-play"
    # a run of the old default, as the code before the change wrote it: run.json names no preset
    old = tmp_path / "old"
    assert cli("train", "gpt", "--data", corpus, "--preset", "gpt-jc", "--steps", "2", *short,
               "--out", str(old)) == 0
    info = json.loads((old / "run.json").read_text())
    info["args"]["preset"] = None
    (old / "run.json").write_text(json.dumps(info))
    assert cli("train", "gpt", "--resume", str(old), "--steps", "4", "--quiet", "--no-sample") == 0
    assert json.loads((old / "trainer_state.json").read_text())["step"] == 4
    assert json.loads((old / "config.json").read_text())["config"]["pos"] == "learned"  # still the gpt-jc model
