"""``attnlab train bahdanau | seq2seq-*``, ``attnlab translate`` and ``attnlab evaluate`` end to end."""

import json

import pytest

from attnlab.cli import main


def cli(*argv):
    """Run the CLI in-process; return its exit status."""
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    return stop.value.code


TRAIN = ["--task", "reverse", "--n-pairs", "60", "--preset", "tiny", "--batch-size", "8", "--quiet",
         "--no-sample", "--set", "eval_every=2", "--set", "eval_iters=1", "--set", "ckpt_every=2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bahdanau-reverse"
    assert cli("train", "bahdanau", *TRAIN, "--steps", "4", "--out", out) == 0
    return out


def test_train_writes_a_complete_run(run_dir):
    for name in ("config.json", "model.safetensors", "src_tokenizer.json", "tgt_tokenizer.json", "run.json",
                 "metrics.jsonl", "trainer_state.json"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_type"] == "seq2seq"
    assert config["config"]["attention"] == "bahdanau" and config["config"]["cell"] == "gru"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["args"]["task"] == "reverse" and info["test_pairs"] == 6


def test_translate_and_evaluate(run_dir, capsys):
    capsys.readouterr()
    assert cli("translate", run_dir, "abc", "dcba", "--beam", "3", "--max-len", "5") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert cli("evaluate", run_dir, "--json", "--split", "val") == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == 6 and 0.0 <= scores["exact_match"] <= 1.0 and scores["cer"] >= 0.0
    assert cli("evaluate", run_dir, "--beam", "2", "--limit", "3") == 0
    text = capsys.readouterr().out
    assert "exact match" in text and "CER" in text and "BLEU" in text


def test_resume_continues_from_the_checkpoint(run_dir, capsys):
    assert cli("train", "bahdanau", "--resume", run_dir, "--steps", "6", "--quiet", "--no-sample") == 0
    steps = [json.loads(line).get("step") for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 6 and steps.count(1) == 1  # no step trained twice


def test_no_attention_kind_trains(tmp_path):
    out = tmp_path / "lstm"
    assert cli("train", "seq2seq-lstm", *TRAIN, "--steps", "2", "--out", out) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["cell"] == "lstm" and config["attention"] == "none" and config["bidirectional"] is False


def test_malformed_tsv_gets_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("un\tone\ndeux two\n", encoding="utf-8")
    assert cli("train", "bahdanau", "--task", bad, "--out", tmp_path / "run", "--quiet") == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "tab" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_bad_inputs_get_clear_errors(run_dir, tmp_path, capsys):
    assert cli("translate", tmp_path / "missing", "abc") == 2
    assert cli("translate", run_dir, "abc", "--beam", "0") == 2
    assert cli("evaluate", run_dir, "--limit", "0") == 2
    err = capsys.readouterr().err
    assert "--beam" in err and "--limit" in err and "Traceback" not in err
