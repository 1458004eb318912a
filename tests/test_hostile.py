"""Hostile input: every value a user can get wrong is one clear error, checked before it is used.

Each test gives attnlab something broken, tampered or absurd and asserts the same four things:
exit status 2, exactly one ``attnlab: error:`` line, no traceback, and (where files matter) no file
created or deleted. One section per class of input:

1. memory: models, contexts and batches that cannot fit are refused before anything is allocated
2. a tokenizer with more ids than the model's vocabulary
3. non-finite (NaN / inf) weights
4. sampling flags: temperature, top-p, top-k, max-new-tokens, seed
5. --device naming a device this machine does not have
6. picture outputs (--out) that are folders, in missing folders, or of an unknown kind
7. translation pairs that are too long (TSV task files)
8. OSError (permission, full disk, a file where a folder should be) as one error line
9. everything else: NUL bytes and huge prompts, broken JSON, run.json of the wrong types, broken
   runs among good ones, symlink loops, bad --set values, hostile --config files, and the command
   line's last resort for MemoryError, RecursionError and library errors

The tiny GPT run every section tampers with is trained once per module (a few seconds).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from attnlab.cli import main
from attnlab.errors import AttnlabError

TINY = ["--preset", "gpt-nano", "--set", "context_length=16", "--batch-size", "4", "--steps", "2",
        "--set", "eval_every=2", "--set", "eval_iters=1", "--quiet", "--no-sample"]
CORPUS = "friends romans countrymen lend me your ears\n" * 60


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained GPT run (character tokenizer); tests copy it before tampering with it."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "gpt", "--data", str(root / "corpus.txt"), *TINY, "--out", str(root / "run")])
    assert exit_info.value.code == 0
    torch.set_num_threads(1)
    return root / "run"


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def refused(capsys, args: list[str], *, unchanged: Path | None = None, stdin: str | None = None,
            monkeypatch=None) -> str:
    """Run the command line; assert exit 2 with exactly one error line and no traceback (and, with
    ``unchanged``, that no file under that folder was created or deleted). Returns the error line."""
    before = files_under(unchanged) if unchanged is not None else None
    if stdin is not None:
        import io

        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.count("attnlab: error:") == 1, err
    assert "Traceback" not in err
    if unchanged is not None:
        assert files_under(unchanged) == before
    return next(line for line in err.splitlines() if line.startswith("attnlab: error:"))


def tampered(run: Path, tmp_path: Path, config: dict | None = None, raw_config=None, tokenizer=None) -> Path:
    """A copy of ``run`` with its config fields changed (``config``), its config.json replaced
    (``raw_config``, any JSON value or bytes) or its tokenizer.json changed (``tokenizer``: a function
    of the parsed JSON, or bytes)."""
    copy = tmp_path / "tampered"
    shutil.copytree(run, copy)
    if config is not None:
        meta = json.loads((copy / "config.json").read_text())
        meta["config"].update(config)
        (copy / "config.json").write_text(json.dumps(meta))
    if raw_config is not None:
        data = raw_config if isinstance(raw_config, bytes) else json.dumps(raw_config).encode()
        (copy / "config.json").write_bytes(data)
    if tokenizer is not None:
        path = copy / "tokenizer.json"
        data = tokenizer if isinstance(tokenizer, bytes) else json.dumps(tokenizer(json.loads(path.read_text())))
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return copy


# --------------------------------------------------------------------------- 1. memory

HUGE_CONFIGS = {
    "wide": {"n_embd": 10**6, "n_head": 1},
    "huge vocabulary": {"vocab_size": 10**9},
    "long context": {"context_length": 10**9},
    "deep": {"n_layer": 10**6},
    "sizes past what PyTorch can index": {"n_embd": 2**31 - 1, "vocab_size": 2**31 - 1, "n_head": 1},
}


@pytest.mark.parametrize("change", HUGE_CONFIGS.values(), ids=HUGE_CONFIGS.keys())
@pytest.mark.parametrize("command", ["generate", "chat", "attention", "convert"])
def test_a_tampered_config_too_big_for_memory_is_refused_before_allocation(run, tmp_path, capsys, monkeypatch,
                                                                          change, command):
    folder = tampered(run, tmp_path, config=change)
    args = {"generate": ["generate", folder, "--max-new-tokens", "2"],
            "chat": ["chat", folder],
            "attention": ["attention", folder, "--text", "friends", "--out", tmp_path / "a.png"],
            "convert": ["convert", folder, tmp_path / "converted", "--to", "hf"]}[command]
    line = refused(capsys, args, unchanged=tmp_path, stdin="hello\n", monkeypatch=monkeypatch)
    assert "config.json" in line
    assert any(word in line for word in ("memory", "absurdly", "too large"))


@pytest.mark.parametrize("flags, words", [
    (["--set", "n_embd=1000000", "--set", "n_head=1"], "to train"),
    (["--batch-size", "10000000"], "activations"),
    (["--set", "context_length=1000000000"], "absurdly long"),
    (["--set", "n_layer=1000000"], "absurdly deep"),
], ids=["wide", "batch", "context", "deep"])
def test_training_that_cannot_fit_is_refused_before_the_model_is_built(corpus, tmp_path, capsys, flags, words):
    line = refused(capsys, ["train", "gpt", "--data", corpus, "--out", tmp_path / "r", "--quiet", *flags],
                   unchanged=tmp_path)
    assert words in line and "gpt" in line
    assert not (tmp_path / "r").exists()


def test_parameters_are_counted_without_allocating_and_without_building_every_layer():
    import dataclasses
    import time

    from attnlab.memory import count_parameters, estimate_training
    from attnlab.models.gpt import GPT, GPTConfig
    from attnlab.models.recurrent import LSTMLM, LSTMLMConfig
    from attnlab.models.registry import MODEL_TYPES, model_class

    assert count_parameters(GPT, GPTConfig())[0] == 124_439_808  # GPT-2 small, as OpenAI reports it
    for cls, config in ((GPT, GPTConfig(n_layer=3, n_head=2, n_embd=16, vocab_size=11, tie_weights=False)),
                        (LSTMLM, LSTMLMConfig(n_layer=3, vocab_size=7))):
        assert count_parameters(cls, config)[0] == sum(p.numel() for p in cls(config).parameters())
    for model_type in MODEL_TYPES:  # every saved kind: the extrapolation over layers is exact
        cls = model_class(model_type)
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        sizes = dict(vocab_size=50, src_vocab_size=50, tgt_vocab_size=50, n_layer=3, n_encoder_layers=3,
                     n_decoder_layers=2, n_embd=32, hidden_size=32, d_ff=64, n_head=2)
        config = cls.config_class(**{k: v for k, v in sizes.items() if k in names})
        model = cls(config)
        assert count_parameters(cls, config) == (sum(p.numel() for p in model.parameters()),
                                                 sum(b.numel() for b in model.buffers())), model_type
    start = time.perf_counter()
    params, _ = count_parameters(GPT, GPTConfig(n_layer=10_000, n_embd=8, n_head=1, vocab_size=10))
    assert time.perf_counter() - start < 5 and params > 10_000 * 8 * 8 * 12
    estimate = estimate_training(GPT, GPTConfig(n_layer=2, n_head=2, n_embd=16, context_length=8, vocab_size=10),
                                 batch_size=4)
    assert estimate.parts["optimizer state"] == 2 * estimate.parts["gradients"] > 0
    assert estimate.parts["activations"] > 0 and estimate.total > 16 * estimate.parameters


def test_the_memory_comparison_can_be_switched_off_but_absurd_values_cannot(monkeypatch):
    from attnlab.memory import check_load
    from attnlab.models.gpt import GPT, GPTConfig

    big = GPTConfig(n_embd=4096, n_head=1, vocab_size=10**8, n_layer=1)  # 0.4T floats: no machine here
    with pytest.raises(AttnlabError, match="cannot fit"):
        check_load(GPT, big, "the test model")
    monkeypatch.setenv("ATTNLAB_MEMORY_CHECK", "off")
    check_load(GPT, big, "the test model")  # only compared, never built
    with pytest.raises(AttnlabError, match="absurdly long"):
        check_load(GPT, GPTConfig(context_length=2**21), "the test model")


# --------------------------------------------------------------------------- 2. tokenizer vs vocabulary


def test_a_tokenizer_with_more_ids_than_the_model_is_refused_at_load(run, tmp_path, capsys):
    def more_characters(data: dict) -> dict:
        return {**data, "chars": data["chars"] + "QXZ"}

    folder = tampered(run, tmp_path, tokenizer=more_characters)
    line = refused(capsys, ["generate", folder, "--prompt", "Q", "--max-new-tokens", "2"], unchanged=tmp_path)
    assert "tokenizer.json" in line and "vocab_size" in line


# --------------------------------------------------------------------------- 3. non-finite weights


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_are_refused_at_load_naming_the_tensor(run, tmp_path, capsys, value):
    from safetensors.torch import load_file, save_file

    folder = tampered(run, tmp_path)
    tensors = load_file(folder / "model.safetensors")
    tensors["blocks.0.mlp.fc.weight"][1, 2] = value
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt", "model_type": "gpt"})
    line = refused(capsys, ["generate", folder, "--max-new-tokens", "2"])
    assert "blocks.0.mlp.fc.weight" in line and "non-finite" in line


# --------------------------------------------------------------------------- 4. sampling flags

SAMPLING = {
    "temperature nan": (["--temperature", "nan"], "--temperature"),
    "temperature inf": (["--temperature", "inf"], "--temperature"),
    "temperature -1": (["--temperature", "-1"], "--temperature"),
    "top-k 0": (["--top-k", "0"], "--top-k"),
    "max-new-tokens huge": (["--max-new-tokens", str(10**9)], "--max-new-tokens"),
    "max-new-tokens negative": (["--max-new-tokens", "-1"], "--max-new-tokens"),
    "seed 2**70": (["--seed", str(2**70)], "--seed"),
    "seed negative": (["--seed", "-3"], "--seed"),
}


@pytest.mark.parametrize("flags, flag", SAMPLING.values(), ids=SAMPLING.keys())
@pytest.mark.parametrize("command", ["generate", "chat"])
def test_bad_sampling_flags_are_one_clear_error(run, capsys, monkeypatch, command, flags, flag):
    line = refused(capsys, [command, run, *flags], stdin="hello\n", monkeypatch=monkeypatch)
    assert flag in line


@pytest.mark.parametrize("command", ["generate", "chat"])
def test_top_p_nan_is_refused(run, capsys, monkeypatch, command):
    assert "--top-p" in refused(capsys, [command, run, "--top-p", "nan"], stdin="hi\n", monkeypatch=monkeypatch)


def test_seeds_of_later_samples_must_stay_in_range(run, capsys):
    assert "--seed" in refused(capsys, ["generate", run, "--seed", str(2**63 - 1), "--num-samples", "2"])


@pytest.mark.filterwarnings("ignore:the prompt is longer")
def test_a_chat_seed_at_the_top_of_the_range_wraps_round(run):
    from attnlab.inference.chat import load_responder

    bot = load_responder(run, seed=2**63 - 1, max_new_tokens=2)
    bot.reply("friends")
    bot.reply("romans")  # the second reply's seed would have overflowed torch's range
    assert bot.config.seed == 1


# --------------------------------------------------------------------------- 5. devices

MISSING_DEVICES = ["nonsense", "cuda:99", "tpu:0"]
if not torch.cuda.is_available():
    MISSING_DEVICES += ["cuda", "cuda:7"]
if not torch.backends.mps.is_available():
    MISSING_DEVICES += ["mps"]


@pytest.mark.parametrize("device", MISSING_DEVICES)
@pytest.mark.parametrize("command", ["generate", "chat", "attention", "evaluate", "translate", "fill", "train"])
def test_a_device_this_machine_lacks_is_one_clear_error(run, corpus, tmp_path, capsys, monkeypatch, command,
                                                        device):
    args = {"generate": ["generate", run],
            "chat": ["chat", run],
            "attention": ["attention", run, "--text", "friends", "--out", tmp_path / "a.png"],
            "evaluate": ["evaluate", run],
            "translate": ["translate", run, "hello"],
            "fill": ["fill", run, "a [MASK]"],
            "train": ["train", "gpt", "--data", corpus, *TINY, "--out", tmp_path / "r"]}[command]
    line = refused(capsys, [*args, "--device", device], unchanged=tmp_path, stdin="hi\n", monkeypatch=monkeypatch)
    assert "--device" in line


# --------------------------------------------------------------------------- 6. picture outputs


@pytest.mark.parametrize("out, words", [
    ("", "is a folder"),  # the test's own folder
    ("missing/a.png", "does not exist"),
    ("a.gif", "end the name with"),
    ("corpus.txt/a.png", "is a file, not a folder"),
    ("sub/", "is a folder"),
])
@pytest.mark.parametrize("command", ["attention", "plot"])
def test_a_picture_out_that_cannot_be_a_picture_is_refused_and_nothing_is_written(run, corpus, tmp_path, capsys,
                                                                                   command, out, words):
    (tmp_path / "sub").mkdir()
    target = str(tmp_path / out) + ("/" if out.endswith("/") else "")
    args = ["attention", run, "--text", "friends"] if command == "attention" else ["plot", run]
    line = refused(capsys, [*args, "--out", target], unchanged=tmp_path)
    assert words in line and "--out" in line


@pytest.mark.parametrize("command", ["compare", "ablate"])
def test_a_results_folder_that_is_a_file_is_refused_before_any_training(corpus, tmp_path, capsys, command):
    line = refused(capsys, [command, "--quick", "--out", corpus], unchanged=tmp_path)
    assert "is a file, not a folder" in line
    line = refused(capsys, [command, "--quick", "--runs", tmp_path / "corpus.txt" / "runs"], unchanged=tmp_path)
    assert "--runs" in line


def test_convert_into_a_folder_below_a_file_is_refused(run, corpus, tmp_path, capsys):
    assert "DST" in refused(capsys, ["convert", run, corpus / "out", "--to", "hf"], unchanged=tmp_path)


# --------------------------------------------------------------------------- 7. translation pairs


def test_a_translation_pair_of_200000_characters_is_refused_naming_the_file_and_line(tmp_path):
    from attnlab.data.tasks import MAX_PAIR_CHARS, load_task

    path = tmp_path / "pairs.tsv"
    path.write_text("un\tone\ndeux\ttwo\n" + "x" * 200_000 + "\tlong\ntrois\tthree\n", encoding="utf-8")
    with pytest.raises(AttnlabError) as err:
        load_task(str(path))
    assert f"{path}, line 3" in str(err.value) and f"{MAX_PAIR_CHARS:,}" in str(err.value)
    path.write_text("un\tone\ndeux\t" + "é" * 1500 + "\n", encoding="utf-8")  # a long target, too
    with pytest.raises(AttnlabError, match="line 2: the target is 1,500 characters"):
        load_task(str(path))


def test_a_tsv_with_a_huge_number_of_lines_is_read_one_line_at_a_time(tmp_path, monkeypatch):
    import attnlab.data.tasks as tasks

    path = tmp_path / "pairs.tsv"
    lines = [f"source {i % 500}\ttarget {i % 500}" for i in range(200_000)]  # repeats cost nothing
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = tasks.load_task(str(path))
    assert len(data.train) + len(data.val) + len(data.test) == 500
    monkeypatch.setattr(tasks, "MAX_PAIRS", 100)
    with pytest.raises(AttnlabError, match="more than 100 distinct pairs"):
        tasks.load_task(str(path))


def test_a_long_pair_through_the_command_line(tmp_path, capsys):
    pytest.importorskip("attnlab.recipes.translation")  # the translation recipes (being rebuilt elsewhere)
    path = tmp_path / "pairs.tsv"
    path.write_text("un\tone\n" + "x" * 200_000 + "\tlong\n", encoding="utf-8")
    line = refused(capsys, ["train", "bahdanau", "--task", path, "--out", tmp_path / "r", "--quiet"])
    assert "line 2" in line


# --------------------------------------------------------------------------- 8. OSError


def test_an_os_error_while_writing_is_one_error_line_naming_the_file(run, tmp_path, capsys, monkeypatch):
    def disk_full(runs, out, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))

    monkeypatch.setattr("attnlab.training.plots.plot_runs", disk_full)
    line = refused(capsys, ["plot", run, "--out", tmp_path / "loss.png"], unchanged=tmp_path)
    assert "No space left on device" in line and "loss.png" in line


def test_a_transcript_below_a_file_is_refused_before_the_conversation(run, corpus, tmp_path, capsys, monkeypatch):
    line = refused(capsys, ["chat", "eliza", "--transcript", corpus / "chat.txt"], stdin="hello\n",
                   monkeypatch=monkeypatch, unchanged=tmp_path)
    assert "--transcript" in line


def test_an_unreadable_tokenizer_is_one_error(run, tmp_path, capsys):
    folder = tampered(run, tmp_path)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").mkdir()  # a folder where the file should be
    assert "tokenizer" in refused(capsys, ["generate", folder])


# --------------------------------------------------------------------------- 9. everything else


def test_nul_bytes_in_a_prompt_are_an_unknown_character_not_a_crash(run, capsys):
    assert "never saw" in refused(capsys, ["generate", run, "--prompt", "friends\x00\x01romans"])


def test_a_10_mb_prompt_is_refused_before_the_model_is_loaded(run, capsys):
    assert "1,000,000" in refused(capsys, ["generate", run, "--prompt", "a" * 10_000_000])


def test_a_prompt_that_is_not_utf8_is_refused(run, capsys):
    assert "UTF-8" in refused(capsys, ["generate", run, "--prompt", "friends \udcff"])


@pytest.mark.parametrize("raw, words", [
    ([1, 2, 3], "not an attnlab model config"),
    (b"[" * 100_000, "nested too deeply"),
    (b"\xff\xfe not json", "not valid JSON"),
    ({"format": "attnlab", "model_type": "gpt", "config": {"n_embd": "wide"}}, "n_embd"),
    ({"format": "attnlab", "model_type": "gpt", "config": {"logit_softcap": float("nan")}}, "finite"),
    ({"format": "attnlab", "model_type": "gpt", "config": {"n_layer": 5000}}, "do not belong together"),
], ids=["list", "deep", "binary", "wrong type", "nan", "more layers than the weights"])
def test_a_broken_config_json_is_one_error(run, tmp_path, capsys, raw, words):
    if isinstance(raw, dict) and raw["config"]:
        meta = json.loads((run / "config.json").read_text())
        raw = {**meta, "config": {**meta["config"], **raw["config"]}}
    folder = tampered(run, tmp_path, raw_config=raw)
    assert words in refused(capsys, ["generate", folder, "--max-new-tokens", "2"])


def test_a_huge_config_or_tokenizer_is_refused_before_it_is_read(run, tmp_path, capsys):
    folder = tampered(run, tmp_path)
    with open(folder / "tokenizer.json", "r+b") as f:
        f.truncate(300 << 20)  # sparse: no disk, no memory
    assert "far more than a tokenizer" in refused(capsys, ["generate", folder])
    with open(folder / "config.json", "r+b") as f:
        f.truncate(2 << 20)
    assert "far more than a model config" in refused(capsys, ["generate", folder])


@pytest.mark.parametrize("broken", [b"{not json", json.dumps({"attnlab_tokenizer": 1, "kind": "char",
                                                                "chars": 12}).encode(),
                                    json.dumps({"attnlab_tokenizer": 1, "kind": "klingon"}).encode()])
def test_a_malformed_tokenizer_is_one_error(run, tmp_path, capsys, broken):
    folder = tampered(run, tmp_path, tokenizer=broken)
    assert "tokenizer" in refused(capsys, ["generate", folder])


def test_runs_lists_the_good_runs_among_broken_ones(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # room for every folder name in the table
    root = tmp_path / "runs"
    shutil.copytree(run, root / "good")
    for name, files in {
        "run-json-a-list": {"run.json": "[1, 2]"},
        "args-a-string": {"run.json": json.dumps({"kind": "gpt", "args": "oops"})},
        "config-corrupt": {"config.json": "{"},
        "metrics-cut-short": {"metrics.jsonl": '{"step": 1, "loss": 2.0}\n{"step": 2, "lo'},
    }.items():
        shutil.copytree(run, root / name)
        for file, text in files.items():
            (root / name / file).write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", str(root)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0 and "Traceback" not in err
    for name in ("good", "run-json-a-list", "args-a-string", "metrics-cut-short"):
        assert name in out


def test_symlink_loops_in_a_corpus_folder_are_harmless(tmp_path, capsys):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("friends romans countrymen\n")
    (folder / "sub" / "up").symlink_to("..")
    (folder / "loop.txt").symlink_to("loop.txt")
    (folder / "sub" / "again").symlink_to(folder)
    with pytest.raises(SystemExit) as exit_info:
        main(["corpora", str(folder)])
    assert exit_info.value.code == 0 and "friends romans" in capsys.readouterr().out


@pytest.mark.parametrize("sets, words", [
    (["colour=blue"], "no such setting"),
    (["n_layer=three"], "whole number"),
    (["dropout=nan"], "finite"),
    (["lr=inf"], "finite"),
    (["n_embd=-8"], "positive"),
    (["batch_size=-1"], "positive"),
    (["context_length=0"], "positive"),
])
def test_bad_set_values_are_one_error_and_no_run_folder(corpus, tmp_path, capsys, sets, words):
    args = ["train", "gpt", "--data", corpus, "--out", tmp_path / "r", "--quiet"]
    for item in sets:
        args += ["--set", item]
    assert words in refused(capsys, args, unchanged=tmp_path)


@pytest.mark.parametrize("change, words", [
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"train": {"batch_size": [1, 2]}}, "train.batch_size"),
    ({"run": {"set": ["n_embd=100000000", "n_head=1"]}}, "cannot fit"),
    ("[" * 5000, "cannot read it"),
], ids=["wrong type", "a list for a number", "too big", "nested too deeply"])
def test_a_hostile_config_yaml_is_one_error(run, corpus, tmp_path, capsys, change, words):
    import yaml

    path = tmp_path / "config.yaml"
    if isinstance(change, str):
        path.write_text(change)
    else:
        record = yaml.safe_load((run / "config.yaml").read_text())
        for part, values in change.items():
            record[part] = {**record[part], **values}
        record["options"]["data"] = str(corpus)
        path.write_text(yaml.safe_dump(record))
    line = refused(capsys, ["train", "--config", path, "--out", tmp_path / "r", "--quiet"], unchanged=tmp_path)
    assert words in line


def test_an_overflowing_explain_seed_is_one_error(capsys):
    assert "--seed" in refused(capsys, ["explain", "self-attention", "--seed", str(2**70)])


@pytest.mark.parametrize("raised, words", [
    (MemoryError(), "out of memory"),
    (RecursionError(), "nested too deeply"),
    (PermissionError(errno.EACCES, "Permission denied", "/some/file"), "Permission denied: /some/file"),
], ids=["memory", "recursion", "permission"])
def test_the_command_line_turns_the_last_resort_errors_into_one_line(run, capsys, monkeypatch, raised, words):
    def broken(*args, **kwargs):
        raise raised

    monkeypatch.setattr("attnlab.runs.load_run", broken)
    assert words in refused(capsys, ["generate", run, "--max-new-tokens", "1"])


def test_a_safetensors_error_is_one_line(run, tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    def broken(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr("attnlab.inference.hf_export.export_run", broken)
    line = refused(capsys, ["convert", run, tmp_path / "hf", "--to", "hf"], unchanged=tmp_path)
    assert "weights file" in line
