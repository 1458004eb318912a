"""attnlab.io: the one atomic writer (whole files, fsynced, usual permissions) and the one metrics reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from attnlab.errors import AttnlabError
from attnlab.io import read_json, read_metrics, write_atomic, write_json_atomic, write_text_atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_files_are_written_whole_fsynced_and_with_the_usual_permissions(tmp_path, monkeypatch, umask_027):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fsync(fd)))
    write_text_atomic(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert len(synced) == 2 and synced[0].startswith(str(tmp_path / ".a.txt.")) and synced[1] == str(tmp_path)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640  # 0666 less the umask, not 0600

    def like_safetensors(tmp: str) -> None:  # writes its own private file and renames it over ours
        private = Path(tmp).with_name(".tmpXyZ789")
        private.write_bytes(b"weights")
        os.chmod(private, 0o600)
        os.replace(private, tmp)

    write_atomic(tmp_path / "w.bin", like_safetensors)
    assert (tmp_path / "w.bin").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "w.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"old": True})

    def failing(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write('{"new": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomic(tmp_path / "x.json", failing)
    assert read_json(tmp_path / "x.json") == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_tokenizers_are_saved_by_the_same_writer(tmp_path, umask_027):
    from attnlab.data.tokenizers import CharTokenizer, load_tokenizer

    tokenizer = CharTokenizer.train("héllo wörld")
    path = tokenizer.save(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o640
    assert "é" in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes
    assert load_tokenizer(path).encode("héllo") == tokenizer.encode("héllo")
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]


def test_read_json_says_clearly_what_is_wrong(tmp_path):
    with pytest.raises(AttnlabError, match="model config not found"):
        read_json(tmp_path / "none.json", what="model config")
    (tmp_path / "bad.json").write_text('{"a": ')
    with pytest.raises(AttnlabError, match="is not valid JSON"):
        read_json(tmp_path / "bad.json")


def test_the_metrics_reader_skips_bad_rows_and_stops_at_a_cut_line(tmp_path):
    lines = ['{"step": 1, "loss": 2.5}', "[1, 2]", '"text"', '{"step": "2", "loss": 2.0}',
             '{"step": 3, "loss": "nan"}', '{"step": 4, "val_loss": true}', '{"loss": 1.0}', "",
             '{"step": 5, "loss": 1.5, "lr": 0.001}', '{"step": 6, "val_loss": NaN}', '{"step": 7, "lo',
             '{"step": 8, "loss": 1.0}']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines), encoding="utf-8")
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 5, 6]
    assert read_metrics(tmp_path / "metrics.jsonl") == rows
    cut = len(lines[0]) + 1
    assert read_metrics(tmp_path, end=cut) == [{"step": 1, "loss": 2.5}]
    assert read_metrics(tmp_path / "elsewhere") == []
    (tmp_path / "metrics.jsonl").write_bytes(b'{"step": 1, "loss": 2.5}\n{"step": 2, "loss": \xff')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1]


def run_folder(path: Path, metrics: str) -> None:
    path.mkdir(parents=True)
    write_json_atomic(path / "config.json", {"format": "attnlab", "model_type": "gpt", "config": {}})
    (path / "metrics.jsonl").write_text(metrics)


def test_one_damaged_run_never_breaks_the_list_of_runs(tmp_path):
    from attnlab.runs import find_runs

    run_folder(tmp_path / "good", '{"step": 4, "loss": 2.0}\n{"step": 4, "val_loss": 1.5}\n')
    run_folder(tmp_path / "odd", '{"step": "four", "val_loss": "low"}\n[]\n{"step": 2, "val_loss": 3.0}\n')
    (tmp_path / "good" / "trainer_state.json").write_text(json.dumps({"step": 4}))
    run_folder(tmp_path / "good" / "checkpoints" / "step-000004", "")  # a checkpoint is no run of its own
    (tmp_path / "odd" / "run.json").write_text('["not", "a", "description"]')
    found = {Path(r["run"]).name: r for r in find_runs(tmp_path)}
    assert sorted(found) == ["good", "odd"]
    assert found["good"]["step"] == 4 and found["good"]["best_val_loss"] == 1.5
    assert found["odd"]["step"] == 2 and found["odd"]["best_val_loss"] == 3.0
