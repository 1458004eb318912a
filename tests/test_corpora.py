"""Corpora: the embedded plays as plain text, user files and folders, the held-out split."""

from __future__ import annotations

import re

import pytest

from attnlab.cli import main as cli_main
from attnlab.data.corpora import list_corpora, load_corpus, markdown_play_to_text, split_train_val
from attnlab.errors import AttnlabError

PLAY_NAMES = [name for name in list_corpora() if name != "shakespeare"]


def test_every_play_is_listed_with_a_description():
    corpora = list_corpora()
    assert len(PLAY_NAMES) == 38
    assert {"julius-caesar", "hamlet", "macbeth", "the-tempest", "shakespeare"} <= set(corpora)
    assert corpora["julius-caesar"].startswith("Julius Caesar")
    assert all(description.strip() for description in corpora.values())


def test_julius_caesar_reads_as_a_play():
    text = load_corpus("julius-caesar")
    assert 110_000 <= len(text) <= 140_000
    assert "Friends, Romans, countrymen" in text
    lines = text.splitlines()
    assert "BRUTUS:" in lines and "ANTONY:" in lines and "CASSIUS:" in lines
    assert "ACT I" in lines and "SCENE I. Rome. A street." in lines
    assert "[Enter FLAVIUS, MARULLUS, and certain Commoners]" in lines
    # a speaker line is followed by the speech itself
    flavius = lines.index("FLAVIUS:")
    assert lines[flavius + 1] == "Hence! home, you idle creatures get you home:"
    assert not any(line != line.rstrip() for line in lines), "markdown line breaks (trailing spaces) remain"


@pytest.mark.parametrize("name", PLAY_NAMES)
def test_no_markdown_survives(name):
    text = load_corpus(name)
    assert len(text) > 50_000
    for line in text.splitlines():
        assert not re.search(r"[*_#\\`]", line), f"{name}: markup left in {line!r}"
    assert re.search(r"^[A-Z][A-Za-z .'-]+:$", text, flags=re.M), f"{name}: no speaker lines"


def test_multi_line_stage_directions_and_inline_asides():
    markdown = (
        "# A Play\n\n## ACT I\n\n### SCENE I. A heath.\n\n_Enter FIRST, and\nSECOND_\n\n"
        "**FIRST**  \n[Aside]_  \nWell\\--said.  \n*[Draws.]*\n\n*Exit.*\n"
    )
    assert markdown_play_to_text(markdown) == (
        "A Play\n\nACT I\n\nSCENE I. A heath.\n\n[Enter FIRST, and SECOND]\n\n"
        "FIRST:\n[Aside]\nWell--said.\n[Draws.]\n\n[Exit.]\n"
    )


def test_shakespeare_joins_all_plays():
    everything = load_corpus("shakespeare")
    assert load_corpus("julius-caesar") in everything
    assert load_corpus("hamlet") in everything
    assert len(everything) > 4_000_000


def test_text_file_drops_bom_and_normalises_newlines(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_bytes("\ufeffFirst line\r\nsecond line\r\n".encode())
    assert load_corpus(str(path)) == "First line\nsecond line\n"


def test_folder_is_read_recursively_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.txt").write_text("two\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("one\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "skip.md").write_text("not text", encoding="utf-8")
    assert load_corpus(str(tmp_path)) == "one\n\ntwo\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"hello\x00world", "binary"),
        (b"caf\xe9 au lait", "UTF-8"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(AttnlabError, match=message) as err:
        load_corpus(str(path))
    assert str(path) in str(err.value)


def test_bad_folders_raise_clear_errors(tmp_path):
    with pytest.raises(AttnlabError, match="no .txt files"):
        load_corpus(str(tmp_path))
    (tmp_path / "a.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(AttnlabError, match="empty"):
        load_corpus(str(tmp_path))
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(AttnlabError, match="b.txt"):
        load_corpus(str(tmp_path))


def test_unknown_name_suggests_close_matches(tmp_path):
    with pytest.raises(AttnlabError, match="julius-caesar") as err:
        load_corpus("julius-ceasar")
    assert "attnlab corpora" in str(err.value)
    with pytest.raises(AttnlabError, match="neither a built-in corpus nor an existing file"):
        load_corpus(str(tmp_path / "missing.txt"))
    with pytest.raises(AttnlabError, match="no corpus given"):
        load_corpus("")


def test_split_is_held_out_and_cut_at_a_line():
    text = "".join(f"line number {i}\n" for i in range(1000))
    train, val = split_train_val(text, 0.1)
    assert train + val == text
    assert train.endswith("\n") and val.startswith("line number")
    assert abs(len(val) - 0.1 * len(text)) < 0.02 * len(text)
    assert val.splitlines()[0] not in train.splitlines()


def test_split_without_newlines_still_splits():
    train, val = split_train_val("x" * 100, 0.25)
    assert (len(train), len(val)) == (75, 25)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, "0.1", True])
def test_split_validates_fraction(fraction):
    with pytest.raises(AttnlabError, match="val_fraction"):
        split_train_val("some text\nmore text\n", fraction)


def test_split_rejects_text_too_short():
    with pytest.raises(AttnlabError, match="too short"):
        split_train_val("a", 0.5)


def test_cli_lists_corpora(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["corpora", "--plain"])
    assert exit_info.value.code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert int(rows["julius-caesar"][1]) == len(load_corpus("julius-caesar"))
    assert "shakespeare" in rows and len(rows) == 39


def test_cli_table_and_preview(capsys):
    with pytest.raises(SystemExit):
        cli_main(["corpora"])
    assert "julius-caesar" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["corpora", "julius-caesar", "--lines", "3"])
    assert capsys.readouterr().out.startswith("Julius Caesar\n\nACT I\n")


def test_cli_unknown_corpus_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["corpora", "no-such-play"])
    assert exit_info.value.code == 2
    assert "attnlab corpora" in capsys.readouterr().err
