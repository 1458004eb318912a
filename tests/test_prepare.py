"""attnlab prepare: streamed token shards equal the in-memory path; batches, cache, sources, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import attnlab.data.prepare as prepare_module
import attnlab.data.sources as sources_module
import attnlab.data.streaming as streaming_module
from attnlab.cli import main as cli_main
from attnlab.data.batching import LanguageModelObjective
from attnlab.data.corpora import load_corpus, split_train_val
from attnlab.data.lm_data import load_lm_data
from attnlab.data.prepare import prepare
from attnlab.data.shards import TokenShards, open_prepared
from attnlab.data.tokenizers import make_tokenizer
from attnlab.errors import AttnlabError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def caesar() -> str:
    return load_corpus("julius-caesar")


@pytest.fixture
def small_blocks(monkeypatch):
    """Tiny read blocks, sample groups and chunks: every streaming boundary case gets exercised."""
    monkeypatch.setattr(sources_module, "BLOCK_BYTES", 997)
    monkeypatch.setattr(streaming_module, "SAMPLE_GROUP_CHARS", 1009)
    monkeypatch.setattr(prepare_module, "CHAR_CHUNK_CHARS", 4093)
    monkeypatch.setattr(prepare_module, "BPE_CHUNK_CHARS", 2039)


def tokens(folder: Path) -> tuple[list[int], list[int]]:
    prepared = open_prepared(folder)
    return prepared.train[:].tolist(), prepared.val[:].tolist()


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def cli_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("attnlab: error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# --------------------------------------------------------------------------- same tokens as in memory


@pytest.mark.parametrize("blocks", [False, True], ids=["default-blocks", "tiny-blocks"])
def test_char_shards_equal_the_in_memory_tokens(tmp_path, caesar, blocks, request):
    if blocks:
        request.getfixturevalue("small_blocks")
    out = tmp_path / "jc"
    meta = prepare("julius-caesar", out, "char", progress=False, shard_tokens=30_000)
    train_text, val_text = split_train_val(caesar, 0.1)
    tokenizer = make_tokenizer("char", caesar)
    assert open_prepared(out).tokenizer.to_dict() == tokenizer.to_dict()
    assert tokens(out) == (tokenizer.encode(train_text), tokenizer.encode(val_text))
    assert meta["dtype"] == "uint8" and meta["split"]["by"] == "tail"
    assert len(meta["shards"]["train"]) == 4 and meta["tokens"]["train"] == len(train_text)


def test_a_text_file_with_bom_crlf_and_unicode_round_trips(tmp_path, small_blocks):
    text = "\ufeffFirst line, caf\u00e9\r\nsecond \U0001f600 line\r\n" + "Ordinary line of text.\r\n" * 300 + "end\r"
    path = write(tmp_path / "notes.txt", text)
    prepare(path, tmp_path / "out", "char", val_fraction=0.2, progress=False)
    expected = load_corpus(path)
    train_text, val_text = split_train_val(expected, 0.2)
    tokenizer = make_tokenizer("char", expected)
    assert tokens(tmp_path / "out") == (tokenizer.encode(train_text), tokenizer.encode(val_text))


def test_bpe_shards_equal_the_in_memory_tokens(tmp_path, caesar, small_blocks):
    prepare("julius-caesar", tmp_path / "bpe", "bpe", vocab_size=400, progress=False)
    train_text, val_text = split_train_val(caesar, 0.1)
    tokenizer = make_tokenizer("bpe", train_text, vocab_size=400)  # trained on the training split only
    prepared = open_prepared(tmp_path / "bpe")
    assert prepared.tokenizer.to_dict() == tokenizer.to_dict()
    assert prepared.meta["dtype"] == "uint16"
    assert tokens(tmp_path / "bpe") == (tokenizer.encode(train_text), tokenizer.encode(val_text))


def test_the_tail_cut_found_while_streaming_matches_split_train_val(tmp_path, caesar, small_blocks):
    # a sample too small to hold the text: the cut is placed during the second pass, from its window
    path = write(tmp_path / "jc.txt", caesar)
    for fraction in (0.1, 0.37):
        out = tmp_path / f"char-{fraction}"
        prepare(path, out, "char", val_fraction=fraction, progress=False)
        train_text, val_text = split_train_val(caesar, fraction)
        tokenizer = make_tokenizer("char", caesar)
        assert tokens(out) == (tokenizer.encode(train_text), tokenizer.encode(val_text))


def test_bpe_trained_on_a_sample_still_encodes_the_text_exactly(tmp_path, caesar, small_blocks):
    path = write(tmp_path / "jc.txt", caesar)
    meta = prepare(path, tmp_path / "out", "bpe", vocab_size=300, bpe_sample_chars=5000, progress=False)
    assert meta["tokenizer"]["trained_on_characters"] < 6000
    prepared = open_prepared(tmp_path / "out")
    train_text, val_text = split_train_val(caesar, 0.1)
    assert prepared.tokenizer.decode(prepared.train[:].tolist()) == train_text
    assert prepared.tokenizer.decode(prepared.val[:].tolist()) == val_text
    assert prepared.train[:].tolist() == prepared.tokenizer.encode(train_text)  # chunk cuts change nothing


# --------------------------------------------------------------------------- batches


def test_batches_from_a_prepared_folder_equal_in_memory_batches(tmp_path, caesar):
    prepare("julius-caesar", tmp_path / "jc", "char", progress=False, shard_tokens=9_000)  # windows cross shards
    data = load_lm_data(tmp_path / "jc")
    train_text, val_text = split_train_val(caesar, 0.1)
    tokenizer = make_tokenizer("char", caesar)
    memory = LanguageModelObjective(torch.tensor(tokenizer.encode(train_text)),
                                    torch.tensor(tokenizer.encode(val_text)), 64, seed=7)
    mapped = LanguageModelObjective(data.train, data.val, 64, seed=7)
    assert len(data.train.arrays) > 10
    for split in ("train", "val"):
        for step in (0, 1, 17, -3):
            a, b = memory.batch(split, step, 12), mapped.batch(split, step, 12)
            assert b["x"].dtype == torch.long and torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])


def test_token_shards_read_across_shard_boundaries(tmp_path):
    values = np.arange(1000, dtype=np.uint16)
    paths = []
    for i, (lo, hi) in enumerate(((0, 300), (300, 310), (310, 1000))):
        paths.append(tmp_path / f"s{i}.bin")
        values[lo:hi].tofile(paths[-1])
    shards = TokenShards(paths, [300, 10, 690], "uint16")
    assert len(shards) == 1000 and shards[299] == 299 and shards[-1] == 999
    assert shards[295:315].tolist() == list(range(295, 315))
    windows = shards.windows([0, 295, 299, 305, 980], 20)
    assert windows.dtype == np.int64
    assert windows.tolist() == [list(range(s, s + 20)) for s in (0, 295, 299, 305, 980)]
    with pytest.raises(IndexError):
        shards.windows([990], 20)


# --------------------------------------------------------------------------- the cache


def test_load_lm_data_prepares_once_then_hits_the_cache(tmp_path, caesar, monkeypatch):
    path = write(tmp_path / "jc.txt", caesar)
    cache = tmp_path / "cache"
    first = load_lm_data(path, "char", cache_dir=cache, progress=False)
    assert first.info["cache"] == "miss" and first.info["train_tokens"] == len(split_train_val(caesar)[0])

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(prepare_module, "_encode_splits", no_tokenizing)
    second = load_lm_data(path, "char", cache_dir=cache, progress=False)
    assert second.info["cache"] == "hit" and second.info["prepared"] == first.info["prepared"]
    assert second.train[:].tolist() == first.train[:].tolist()
    # the recipe's use: an objective straight from it
    objective = LanguageModelObjective(second.train, second.val, 32, seed=1)
    assert objective.batch("train", 0, 4)["x"].shape == (4, 32)
    assert second.head_text(40) == caesar[:40]

    monkeypatch.undo()
    (Path(second.info["prepared"]) / "meta.json").unlink()  # a broken entry is prepared again
    assert load_lm_data(path, "char", cache_dir=cache, progress=False).info["cache"] == "miss"
    write(path, caesar + "A new line at the end.\n")  # a changed source gets a fresh entry, the stale one goes
    third = load_lm_data(path, "char", cache_dir=cache, progress=False)
    assert third.info["cache"] == "miss" and third.info["prepared"] != first.info["prepared"]
    assert [p.name for p in (cache / "prepared").iterdir()] == [Path(third.info["prepared"]).name]


def test_the_cache_honours_a_given_tokenizer_and_env(tmp_path, caesar, monkeypatch):
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path / "env-cache"))
    tokenizer = make_tokenizer("char", caesar + "\u00e9")  # a resumed run's tokenizer, one id more
    data = load_lm_data("julius-caesar", tokenizer=tokenizer, progress=False)
    assert data.tokenizer.to_dict() == tokenizer.to_dict()
    assert Path(data.info["prepared"]).parent == tmp_path / "env-cache" / "prepared"
    assert data.val[:].tolist() == tokenizer.encode(split_train_val(caesar)[1])


# --------------------------------------------------------------------------- sources with documents


def test_a_folder_is_joined_like_load_corpus_and_split_by_files(tmp_path, small_blocks):
    folder = tmp_path / "texts"
    write(folder / "a.txt", "\n\nFirst file.\nIt has two lines.\n\n\n")
    write(folder / "b" / "blank.txt", " \n\n")
    write(folder / "b" / "c.txt", "Second file\r\nwith Windows endings" + " and more words" * 100 + "\r\n")
    for i in range(7):
        write(folder / f"d{i}.txt", f"File number {i}.\n" * (i + 1))
    meta = prepare(folder, tmp_path / "out", "char", val_fraction=0.25, progress=False)
    prepared = open_prepared(tmp_path / "out")
    decode = prepared.tokenizer.decode
    assert decode(prepared.train[:].tolist()) + decode(prepared.val[:].tolist()) == load_corpus(folder)
    assert meta["split"] == {"by": "documents", "documents": 9, "first_val_document": 7}
    assert decode(prepared.val[:].tolist()) == "File number 5.\n" * 6 + "\n" + "File number 6.\n" * 7


def test_a_folder_with_one_text_file_falls_back_to_the_tail(tmp_path):
    folder = tmp_path / "one"
    write(folder / "only.txt", "line one\nline two\nline three\nline four\n" * 20)
    meta = prepare(folder, tmp_path / "out", "char", progress=False)
    assert meta["split"]["by"] == "tail"
    train_text, val_text = split_train_val(load_corpus(folder), 0.1)
    prepared = open_prepared(tmp_path / "out")
    assert prepared.tokenizer.decode(prepared.val[:].tolist()) == val_text


def rows() -> list[dict]:
    out = [{"id": i, "text": f"Row {i} says hello.\r\nSecond line of row {i}.\n", "lang": "en"} for i in range(20)]
    out[3]["text"] = ""
    out[5]["text"] = None
    del out[6]["text"]
    return out


def expected_rows_text() -> str:
    texts = [r["text"].replace("\r\n", "\n").strip("\n") for r in rows() if r.get("text")]
    return "\n\n".join(texts) + "\n"


def write_table(path: Path) -> Path:
    import pyarrow as pa

    if path.suffix == ".jsonl":
        write(path, "".join(json.dumps(r) + "\n" for r in rows()) + "\n")
        return path
    table = pa.Table.from_pylist([{"id": r["id"], "text": r.get("text")} for r in rows()])
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, row_group_size=6)
    elif path.name.endswith("stream.arrow"):
        with pa.ipc.new_stream(path, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=4):
                writer.write_batch(batch)
    else:
        with pa.ipc.new_file(path, table.schema) as writer:
            writer.write_table(table, max_chunksize=4)
    return path


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.parquet", "rows.arrow", "rows-stream.arrow"])
@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_table_sources_read_their_text_column(tmp_path, name, kind):
    path = write_table(tmp_path / name)
    meta = prepare(path, tmp_path / "out", kind, vocab_size=300, val_fraction=0.2, progress=False)
    prepared = open_prepared(tmp_path / "out")
    decode = prepared.tokenizer.decode
    train, val = decode(prepared.train[:].tolist()), decode(prepared.val[:].tolist())
    assert train + val == expected_rows_text()
    assert meta["split"]["by"] == "documents" and meta["split"]["documents"] == 17
    assert val.startswith("Row 17 says hello.") and "Row 16" not in val  # the last 3 of 17 documents


# --------------------------------------------------------------------------- bad input


def test_a_source_that_changed_since_it_was_prepared_is_refused(tmp_path, caesar):
    path = write(tmp_path / "jc.txt", caesar)
    prepare(path, tmp_path / "out", "char", progress=False)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(AttnlabError, match=r"jc\.txt changed since it was prepared.*modification time"):
        load_lm_data(tmp_path / "out")
    write(path, caesar.replace("Caesar", "Kaesar"))  # same size, other content
    with pytest.raises(AttnlabError, match=r"jc\.txt changed since it was prepared"):
        load_lm_data(tmp_path / "out")
    path.unlink()  # a source that is gone: the shards stand on their own
    assert len(load_lm_data(tmp_path / "out").train) > 0


def test_a_truncated_or_missing_shard_is_refused(tmp_path):
    prepare("julius-caesar", tmp_path / "out", "char", progress=False)
    shard = tmp_path / "out" / "train-00000.bin"
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    with pytest.raises(AttnlabError, match=r"train-00000\.bin is truncated"):
        load_lm_data(tmp_path / "out")
    shard.unlink()
    with pytest.raises(AttnlabError, match=r"train-00000\.bin is missing"):
        load_lm_data(tmp_path / "out")


def test_a_meta_json_from_another_format_version_is_refused(tmp_path, capsys):
    prepare("julius-caesar", tmp_path / "out", "char", progress=False)
    meta_path = tmp_path / "out" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(AttnlabError, match=r"meta\.json is format version 99"):
        load_lm_data(tmp_path / "out")


def test_settings_and_tokenizers_must_match_a_prepared_folder(tmp_path, caesar):
    prepare("julius-caesar", tmp_path / "out", "char", progress=False)
    assert load_lm_data(tmp_path / "out", "char", None, 0.1).info["tokenizer"] == "char"
    with pytest.raises(AttnlabError, match="prepared with the char tokenizer, not bpe"):
        load_lm_data(tmp_path / "out", "bpe")
    with pytest.raises(AttnlabError, match="--val-fraction 0.1, not 0.2"):
        load_lm_data(tmp_path / "out", val_fraction=0.2)
    with pytest.raises(AttnlabError, match="tokenizer of this run differs"):
        load_lm_data(tmp_path / "out", tokenizer=make_tokenizer("char", caesar + "#"))


def test_a_missing_text_column_and_a_fake_parquet_are_refused(tmp_path, capsys):
    jsonl = write_table(tmp_path / "rows.jsonl")
    parquet = write_table(tmp_path / "rows.parquet")
    for path in (jsonl, parquet):
        err = cli_error(capsys, "prepare", str(path), "--text-column", "body", "--out", str(tmp_path / "o"))
        assert str(path) in err and "no column 'body'" in err and "'text'" in err
    fake = write(tmp_path / "fake.parquet", "this is plain text, not parquet\n" * 10)
    err = cli_error(capsys, "prepare", str(fake), "--out", str(tmp_path / "o"))
    assert str(fake) in err and "is not a Parquet file" in err
    fake_arrow = write(tmp_path / "fake.arrow", "not arrow either\n")
    assert "is not a Arrow file" in cli_error(capsys, "prepare", str(fake_arrow), "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", ["empty-file", "blank-file", "blank-folder", "blank-rows", "empty-jsonl"])
def test_an_empty_source_is_refused(tmp_path, capsys, case):
    if case == "empty-file":
        source = write(tmp_path / "empty.txt", "")
    elif case == "blank-file":
        source = write(tmp_path / "blank.txt", " \n\n\t\n")
    elif case == "blank-folder":
        write(tmp_path / "folder" / "a.txt", "\n")
        source = write(tmp_path / "folder" / "b.txt", "") and tmp_path / "folder"
    elif case == "blank-rows":
        source = write(tmp_path / "rows.jsonl", '{"text": ""}\n{"text": null}\n{"text": "\\n"}\n')
    else:
        source = write(tmp_path / "none.jsonl", "\n\n")
    err = cli_error(capsys, "prepare", str(source), "--out", str(tmp_path / "out"))
    assert str(source) in err and ("empty" in err or "no text" in err)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_bad_text_and_settings_are_refused_with_one_line(tmp_path, capsys):
    binary = write(tmp_path / "bin.txt", b"abc\x00def")
    assert "binary" in cli_error(capsys, "prepare", str(binary), "--out", str(tmp_path / "o"))
    latin = write(tmp_path / "latin.txt", "line one\nna\u00efve\n".encode("latin-1"))
    assert "line 2" in cli_error(capsys, "prepare", str(latin), "--out", str(tmp_path / "o"))
    assert "neither a built-in corpus" in cli_error(capsys, "prepare", "no-such-play", "--out", str(tmp_path / "o"))
    assert "val_fraction" in cli_error(capsys, "prepare", "julius-caesar", "--val-fraction", "1.5",
                                       "--out", str(tmp_path / "o"))
    assert "at least 257" in cli_error(capsys, "prepare", "julius-caesar", "--tokenizer", "bpe",
                                       "--vocab-size", "100", "--out", str(tmp_path / "o"))
    prepare("julius-caesar", tmp_path / "done", "char", progress=False)
    assert "is a prepared folder already" in cli_error(capsys, "prepare", str(tmp_path / "done"), "--out",
                                                       str(tmp_path / "o"))
    (tmp_path / "mine").mkdir()
    write(tmp_path / "mine" / "keep.txt", "user data")
    assert "not a prepared folder" in cli_error(capsys, "prepare", "julius-caesar", "--overwrite",
                                                "--out", str(tmp_path / "mine"))
    assert (tmp_path / "mine" / "keep.txt").exists() and not (tmp_path / "o").exists()


def test_the_command_writes_a_folder_and_overwrite_replaces_it(tmp_path, capsys):
    out = tmp_path / "jc"
    cli_main_ok(["prepare", "julius-caesar", "--out", str(out), "--quiet"])
    assert "train on it with: attnlab train gpt --data" in capsys.readouterr().out
    err = cli_error(capsys, "prepare", "julius-caesar", "--out", str(out))
    assert "already exists" in err
    cli_main_ok(["prepare", "julius-caesar", "--tokenizer", "bpe", "--vocab-size", "300", "--out", str(out),
                 "--overwrite", "--quiet"])
    assert open_prepared(out).meta["tokenizer"]["kind"] == "bpe"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jc"]


def cli_main_ok(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 0


def test_a_prepare_killed_with_sigkill_leaves_nothing_training_accepts(tmp_path, caesar):
    path = write(tmp_path / "jc.txt", caesar * 3)
    out = tmp_path / "out"
    child = textwrap.dedent(f"""
        import sys, time
        import attnlab.data.shards as shards
        original = shards.ShardWriter.write
        def slow(self, ids):
            original(self, ids)
            print("writing", flush=True)
            time.sleep(60)
        shards.ShardWriter.write = slow
        from attnlab.data.prepare import prepare
        prepare({str(path)!r}, {str(out)!r}, "char", progress=False)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert not out.exists() and (tmp_path / ".out.partial").is_dir()
    with pytest.raises(AttnlabError, match="neither a built-in corpus nor an existing file"):
        load_lm_data(out)  # nothing there for training to take
    prepare(path, out, "char", progress=False)  # rerunning finishes the job and cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jc.txt", "out"]
    assert len(open_prepared(out).train) + len(open_prepared(out).val) == 3 * len(caesar)


def test_bpe_chunks_encode_like_the_whole_text_even_on_odd_whitespace():
    import random

    from attnlab.data.streaming import bpe_chunks

    tokenizer = make_tokenizer("bpe", load_corpus("julius-caesar"), vocab_size=300)
    alphabet = list("ab cd\n\n  \t'sS12.,!?\u00e9\u00a0\u3000\u2028\x1c\x85") + [" the", "'ll", " 12", "\n ", " \n"]
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        pieces, i = [], 0
        while i < len(text):
            pieces.append(text[i: i + rng.randint(1, 30)])
            i += len(pieces[-1])
        chunks = list(bpe_chunks(pieces, rng.randint(2, 40)))
        assert "".join(chunks) == text
        assert [t for chunk in chunks for t in tokenizer.encode(chunk)] == tokenizer.encode(text)
