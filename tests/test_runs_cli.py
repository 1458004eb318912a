"""``attnlab runs``: full paths (never cut at 80 columns), ``--plain`` for scripts, a missing folder is an error."""

from __future__ import annotations

import json

import pytest

from attnlab.checkpoint import save_model
from attnlab.cli import main
from attnlab.models.gpt import GPT, GPTConfig


def make_run(folder, val_losses=(3.0, 2.5, 2.75)):
    save_model(GPT(GPTConfig(vocab_size=10, context_length=8, n_layer=1, n_head=1, n_embd=8)), folder)
    rows = [{"step": 10 * (i + 1), "val_loss": v} for i, v in enumerate(val_losses)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "run.json").write_text(json.dumps({"kind": "gpt", "args": {"data": "julius-caesar"}}))
    return folder


def runs(*args) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", *args])
    return exit_info.value.code


@pytest.fixture
def deep_run(tmp_path):
    folder = tmp_path / "experiments" / ("a-rather-long-folder-name-" * 4) / "gpt-julius-caesar-lr3e-4-seed1"
    folder.mkdir(parents=True)
    return make_run(folder)


def test_table_prints_full_paths_however_long(deep_run, tmp_path, capsys):
    assert len(str(deep_run)) > 120
    assert runs(str(tmp_path / "experiments")) == 0
    out = capsys.readouterr().out
    assert str(deep_run) in out  # on one line, not cut with an ellipsis nor folded
    assert "\u2026" not in out and "2.5000" in out and "julius-caesar" in out


def test_plain_is_one_tab_separated_line_per_run(deep_run, tmp_path, capsys):
    second = make_run(deep_run.parent / "second", val_losses=())
    assert runs(str(tmp_path / "experiments"), "--plain") == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted([f"{deep_run}\tgpt\tjulius-caesar\t30\t2.5000",
                                    f"{second}\tgpt\tjulius-caesar\t0\tnan"])


@pytest.mark.parametrize("plain", [[], ["--plain"]])
def test_a_missing_or_non_folder_root_is_one_error(tmp_path, capsys, plain):
    for root, says in ((tmp_path / "nonexistent", "does not exist"), (tmp_path / "file.txt", "is not a folder")):
        if root.suffix:
            root.write_text("not runs")
        assert runs(str(root), *plain) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("attnlab: error:") == 1
        assert says in captured.err and "Traceback" not in captured.err


def test_no_runs_yet_under_the_default_folder_is_not_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runs() == 0
    assert "no runs under runs/ yet" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert runs("empty", "--plain") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no runs under empty/" in captured.err  # nothing for a script to parse
