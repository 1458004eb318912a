"""Bad input to 'attnlab train' and 'attnlab generate': one clear message, exit 2, nothing written (issue 3)."""

import pytest

from attnlab.cli import main


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture
def bad(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(b"abc\x00\x01\x02\xff")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "no_text").mkdir()
    (tmp_path / "no_text" / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "short.txt").write_text("far too short for one context\n")
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "not_a_run" / "notes.txt").write_text("hello")
    return tmp_path


CASES = {
    "empty file": (["--data", "{d}/empty.txt"], "empty"),
    "binary file": (["--data", "{d}/binary.txt"], "binary"),
    "not utf-8": (["--data", "{d}/latin1.txt"], "UTF-8"),
    "folder without text": (["--data", "{d}/no_text"], ".txt"),
    "shorter than one context": (["--data", "{d}/short.txt"], "context"),
    "heads do not divide width": (["--set", "n_head=5"], "n_head"),
    "unknown setting": (["--set", "colour=blue"], "no such setting"),
    "malformed set": (["--set", "n_head"], "key=value"),
    "resume a folder that is not a run": (["--resume", "{d}/not_a_run"], "nothing to resume"),
    "resume with nothing": (["--resume", "{d}/missing"], "nothing to resume"),
    "cosine floor above peak": (["--lr", "1e-3", "--set", "min_lr=1e-2"], "min_lr"),
    "unknown preset": (["--preset", "gpt-huge"], "preset"),
}


@pytest.mark.parametrize("case", CASES)
def test_train_rejects_bad_input_cleanly(capsys, bad, case):
    options, expected = CASES[case]
    options = [o.format(d=bad) for o in options]
    out = bad / "out"
    code, err = run_cli(capsys, "train", "gpt", *options, "--steps", "2", "--out", str(out), "--quiet",
                        "--no-sample")
    assert code == 2
    assert err.startswith("attnlab: error:") and expected in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing half-written


def test_generate_on_a_folder_that_is_not_a_run(capsys, bad):
    code, err = run_cli(capsys, "generate", str(bad / "not_a_run"))
    assert code == 2 and "not a run folder" in err


def test_out_folder_with_files_is_not_overwritten(capsys, bad):
    code, err = run_cli(capsys, "train", "gpt", "--out", str(bad / "not_a_run"), "--steps", "2", "--quiet")
    assert code == 2 and "--resume" in err
    assert (bad / "not_a_run" / "notes.txt").read_text() == "hello"


def test_unknown_kind(capsys):
    code, err = run_cli(capsys, "train", "perceptron")
    assert code == 2 and "unknown model kind" in err


def help_text(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_help_states_each_default_once(capsys):
    flat = help_text(capsys, "train", "gpt")
    assert "(default: None)" not in flat and "(default: False)" not in flat
    assert flat.count("(default: julius-") == 1  # --data names its default itself; nothing is appended
    assert "--seed SEED seed for weights, batches and dropout (default: 1337)" in flat
    flat = help_text(capsys, "generate")
    assert "softmax temperature; 0 = greedy (default: 0.8)" in flat and "(default: )" not in flat
