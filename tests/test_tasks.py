"""Translation tasks: Babel dates, copy/reverse, TSV files, disjoint splits, padded batches."""

from __future__ import annotations

import re
from datetime import date

import pytest
import torch
from babel.dates import format_date

from attnlab.data.tasks import encode_pairs, list_tasks, load_task
from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, CharTokenizer, WordTokenizer
from attnlab.errors import AttnlabError

ENGLISH_MONTHS = "January February March April May June July August September October November December"
FRENCH_MONTHS = "janvier février mars avril mai juin juillet août septembre octobre novembre décembre"


def _parse_english(text: str) -> date:
    match = re.fullmatch(r"(\w+), (\w+) (\d+), (\d{4})", text)
    assert match, text
    return date(int(match[4]), ENGLISH_MONTHS.split().index(match[2]) + 1, int(match[3]))


def _parse_french(text: str) -> date:
    match = re.fullmatch(r"(\w+) (\d+)(?:er)? (\w+) (\d{4})", text)
    assert match, text
    return date(int(match[4]), FRENCH_MONTHS.split().index(match[3]) + 1, int(match[2]))


def test_dates_fr_en_pairs_are_the_same_date():
    data = load_task("dates-fr-en", n_pairs=300, seed=1)
    assert data.name == "dates-fr-en"
    for source, target in data.train + data.val + data.test:
        day = _parse_english(target)
        assert _parse_french(source) == day
        assert 1900 <= day.year <= 2100
        assert source == format_date(day, format="full", locale="fr")  # as Babel writes it, case kept
        assert target.split(",")[0] == day.strftime("%A")


def test_the_readme_example_is_what_babel_writes():
    day = date(2018, 5, 9)
    assert format_date(day, format="full", locale="fr") == "mercredi 9 mai 2018"
    assert format_date(day, format="full", locale="en") == "Wednesday, May 9, 2018"


def test_dates_to_iso_and_hyphenated_locales():
    data = load_task("dates-de-iso", n_pairs=50)
    for source, target in data.train:
        assert source == format_date(date.fromisoformat(target), format="full", locale="de")
    pt = load_task("dates-pt-BR-en", n_pairs=20)
    assert pt.train[0][0] == format_date(_parse_english(pt.train[0][1]), format="full", locale="pt_BR")


def test_splits_are_80_10_10_disjoint_and_deterministic():
    data = load_task("dates-es-en", n_pairs=1000, seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (800, 100, 100)
    sources = [set(s for s, _ in split) for split in (data.train, data.val, data.test)]
    assert sum(map(len, sources)) == 1000
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert load_task("dates-es-en", n_pairs=1000, seed=3) == data
    assert load_task("dates-es-en", n_pairs=1000, seed=4) != data


def test_k_joins_k_dates_per_sentence():
    one = load_task("dates-fr-en", n_pairs=200, k=1)
    two = load_task("dates-fr-en", n_pairs=200, k=2)
    assert two.name == "dates-fr-en-k2"
    for source, target in two.train:
        sources, targets = source.split(" ; "), target.split(" ; ")
        assert len(sources) == len(targets) == 2
        assert [_parse_french(s) for s in sources] == [_parse_english(t) for t in targets]
    mean = lambda pairs: sum(len(s) for s, _ in pairs) / len(pairs)  # noqa: E731
    assert mean(two.train) > 1.8 * mean(one.train)


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_copy_and_reverse(task):
    data = load_task(task, n_pairs=300, k=2, seed=5)
    for source, target in data.train + data.val + data.test:
        assert re.fullmatch(r"[a-z]{6,24}", source)
        assert target == (source if task == "copy" else source[::-1])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dates-xx-en", "does not know the locale 'xx'"),
        ("dates-fr", "dates-<src>-<tgt>"),
        ("dates-fr-en-zz", "'zz'"),
        ("translate", "unknown task"),
    ],
)
def test_bad_task_names(spec, message):
    with pytest.raises(AttnlabError, match=message):
        load_task(spec, n_pairs=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_pairs": 2}, "n_pairs"), ({"k": 0}, "k must"), ({"n_pairs": 80_000}, "only 73,414 dates")],
)
def test_bad_sizes(kwargs, message):
    with pytest.raises(AttnlabError, match=message):
        load_task("dates-fr-en", **kwargs)


def test_too_few_distinct_pairs(monkeypatch):
    import attnlab.data.tasks as tasks

    monkeypatch.setattr(tasks, "SYMBOLS", "ab")
    monkeypatch.setattr(tasks, "SYMBOL_LENGTHS", (3, 3))  # only 2**3 = 8 distinct strings
    with pytest.raises(AttnlabError, match=r"too few distinct pairs for n_pairs=20 \(found 8\)"):
        load_task("copy", n_pairs=20)


def test_list_tasks():
    tasks = list_tasks()
    assert {"dates-<src>-<tgt>", "copy", "reverse"} <= set(tasks)


# --------------------------------------------------------------------------- TSV


def test_tsv_file_is_read_deduplicated_and_split(tmp_path):
    path = tmp_path / "pairs.tsv"
    lines = [f"source {i}\ttarget {i}" for i in range(50)]
    path.write_text("\ufeff" + "\r\n".join(lines + ["source 0\tanother target", ""]), encoding="utf-8")
    data = load_task(str(path), seed=2)
    pairs = data.train + data.val + data.test
    assert (len(data.train), len(data.val), len(data.test)) == (40, 5, 5)
    assert sorted(pairs) == sorted((f"source {i}", f"target {i}") for i in range(50))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"a\tb\nno tab here\nc\td\n", "line 2: no tab"),
        (b"a\tb\nc\td\n\t\xc3\xa9\n", "line 3: the source is empty"),
        (b"a\tb\nc\t  \n", "line 2: the target is empty"),
        (b"a\tb\nc\td\ne\tf\ncaf\xe9\tcoffee\n", "line 4: not valid UTF-8"),
        (b"a\tb\tc\n", "line 1: more than one tab"),
        (b"a\tb\na\tc\n", "at least 3 distinct pairs"),
    ],
)
def test_bad_tsv_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(AttnlabError, match=message) as err:
        load_task(str(path))
    assert str(path) in str(err.value) or "distinct" in message


# --------------------------------------------------------------------------- batching


def test_encode_pairs_pads_and_masks():
    pairs = [("abc", "x y"), ("a", "y x x")]
    src_tok = CharTokenizer.train("abc", specials=SEQ2SEQ_SPECIALS)
    tgt_tok = WordTokenizer.train("x y\ny x x")
    batch = encode_pairs(pairs, src_tok, tgt_tok)
    assert batch["src"].dtype == torch.long and batch["src_mask"].dtype == torch.bool
    assert batch["src"].tolist() == [src_tok.encode("abc"), src_tok.encode("a") + [0, 0]]
    assert batch["src_mask"].tolist() == [[True] * 3, [True, False, False]]
    assert batch["src_lengths"].tolist() == [3, 1]
    bos, eos, pad = tgt_tok.bos_id, tgt_tok.eos_id, tgt_tok.pad_id
    x, y = tgt_tok.encode("x y")
    assert batch["tgt_in"].tolist() == [[bos, x, y, pad], [bos, *tgt_tok.encode("y x x")]]
    assert batch["tgt_out"].tolist() == [[x, y, eos, pad], [*tgt_tok.encode("y x x"), eos]]
    assert batch["tgt_mask"].tolist() == [[True, True, True, False], [True] * 4]
    assert tgt_tok.decode(batch["tgt_out"][1]) == "y x x"


def test_encode_pairs_needs_specials():
    with pytest.raises(AttnlabError, match="no pad"):
        encode_pairs([("a", "b")], CharTokenizer.train("a"), WordTokenizer.train("b"))
    with pytest.raises(AttnlabError, match="bos, eos"):
        encode_pairs([("a", "b")], WordTokenizer.train("a"), CharTokenizer.train("b", specials=("<pad>",)))
