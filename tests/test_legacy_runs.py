"""Runs saved before the config vocabulary change (``emb_dim``, ``num_layers``, ``attention_impl``,
``d_model``, ``max_length``) still load, translate, evaluate, fill and resume.

``tests/data/legacy-*`` are tiny run folders written by ``attnlab train`` before the change (4 steps,
the smallest presets, ``--set d_model=32 ... max_length=64`` on the Transformer). The expected
outputs below were printed by that same code, so they pin that loading changed nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from attnlab.checkpoint import config_from_dict, config_from_preset
from attnlab.cli import main
from attnlab.models.encoder import EncoderConfig
from attnlab.models.registry import load_model
from attnlab.models.seq2seq import PRESETS as SEQ2SEQ_PRESETS
from attnlab.models.seq2seq import Seq2SeqConfig
from attnlab.models.transformer import TransformerConfig

DATA = Path(__file__).parent / "data"
BAHDANAU, TRANSFORMER, ENCODER = DATA / "legacy-bahdanau", DATA / "legacy-transformer", DATA / "legacy-encoder"

# what the code before the change printed for these runs
EXPECTED = {
    BAHDANAU: {"greedy": ["sjmw", "sjmlmlmlmlmlmlmlmlml"],
               "beam3": ["wlmwlmlmwlmlmlmwlmlm", "lfsjmlmlmlmlmlmlmlm"]},
    TRANSFORMER: {"greedy": ["", "ppppppppppppp"],
                  "beam3": ["pppppppppppppppppppp", "pppppppppppppppppppp"]},
}


def cli(*argv) -> int:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    return stop.value.code


def test_old_field_names_map_to_the_new_ones():
    old = {"emb_dim": 24, "num_layers": 2, "attention_impl": "scratch", "hidden_size": 16}
    config = config_from_dict(Seq2SeqConfig, old)
    assert (config.n_embd, config.n_layer, config.hidden_size) == (24, 2, 16)
    assert not hasattr(config, "attention_impl")
    config = config_from_dict(TransformerConfig, {"d_model": 32, "n_head": 2, "max_length": 48})
    assert (config.n_embd, config.context_length) == (32, 48)
    assert config_from_dict(EncoderConfig, {"d_model": 48, "n_head": 4}).n_embd == 48
    # the user's old name still beats the preset's new one (e.g. `--set emb_dim=24` on an old run.json)
    assert config_from_preset(Seq2SeqConfig, SEQ2SEQ_PRESETS, "tiny", "bahdanau", {"emb_dim": 24}).n_embd == 24


@pytest.mark.parametrize("folder", [BAHDANAU, TRANSFORMER, ENCODER])
def test_the_fixtures_use_the_old_names_and_load(folder):
    saved = json.loads((folder / "config.json").read_text())["config"]
    assert {"emb_dim", "num_layers", "attention_impl"} <= set(saved) or "d_model" in saved
    model = load_model(folder)
    assert model.config.n_embd == saved.get("emb_dim", saved.get("d_model"))
    if "max_length" in saved:
        assert model.config.context_length == saved["max_length"] == 64


@pytest.mark.parametrize("folder", [BAHDANAU, TRANSFORMER])
def test_old_translation_runs_translate_as_before(folder, monkeypatch):
    from attnlab.inference import search
    from attnlab.inference.translate import load_translator

    # the old code let a decoder write <bos>/<pad>; with that allowed again the outputs are the old ones
    monkeypatch.setattr(search, "never_emit", lambda step, banned: step)

    translator = load_translator(folder)
    assert translator.translate(["abc", "hello"]) == EXPECTED[folder]["greedy"]
    assert translator.translate(["abc", "hello"], beam=3) == EXPECTED[folder]["beam3"]
    src, tgt, weights = translator.alignment("abc")
    assert src == list("abc") and weights.shape == (len(tgt), 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(tgt)))
    if folder == BAHDANAU:
        assert tgt == ["s", "j", "m", "w", "<eos>"]


@pytest.mark.parametrize("folder", [BAHDANAU, TRANSFORMER])
def test_old_translation_runs_evaluate_and_translate_on_the_command_line(folder, capsys, monkeypatch):
    from attnlab.inference import search

    monkeypatch.setattr(search, "never_emit", lambda step, banned: step)  # as the old code decoded
    capsys.readouterr()
    assert cli("translate", folder, "abc", "hello") == 0
    assert capsys.readouterr().out.splitlines() == [line or "" for line in EXPECTED[folder]["greedy"]]
    assert cli("evaluate", folder, "--json") == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == 6 and scores["task"] == "reverse" and 0.0 <= scores["exact_match"] <= 1.0


def test_old_encoder_run_fills_as_before(capsys):
    from attnlab.data.tokenizers import load_tokenizer
    from attnlab.inference.fill import fill_masks

    guesses = fill_masks(load_model(ENCODER), load_tokenizer(ENCODER / "tokenizer.json"),
                         "Friends, [MASK], countrymen", top_k=3)
    assert [token for token, _ in guesses[0]] == [" one", " or", "For"]
    capsys.readouterr()
    assert cli("fill", ENCODER, "Friends, [MASK], countrymen", "--top", "3") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "Friends, one, countrymen"


@pytest.mark.parametrize("kind, folder", [("bahdanau", BAHDANAU), ("transformer", TRANSFORMER),
                                          ("encoder", ENCODER)])
def test_old_runs_resume(kind, folder, tmp_path):
    run = tmp_path / folder.name
    shutil.copytree(folder, run)
    before = load_model(run).config
    assert cli("train", kind, "--resume", run, "--steps", "6", "--quiet", "--no-sample") == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert min(steps) == 5 and max(steps) == 6  # steps 1-4 were trained before the change
    after = load_model(run)
    assert after.config == before  # the same model, its config now written with the new names
    saved = json.loads((run / "config.json").read_text())["config"]
    assert "n_embd" in saved and not {"emb_dim", "d_model", "max_length", "attention_impl"} & set(saved)


# ---- language-model runs written before the redesign (training/run.py, top-level trainer state, "bptt")
GPT_RUN, LSTM_RUN = DATA / "legacy-gpt", DATA / "legacy-lstm"
CORPUS = "friends romans countrymen lend me your ears\n" * 60  # what they were trained on, as corpus.txt
LM_EXPECTED = {  # printed by the code before the redesign: greedy continuation of "friends", then the
    GPT_RUN: ("friends" + "s" * 20, 2.867672),  # validation loss after resuming from step 4 to 6
    LSTM_RUN: ("friendsn" + "m" * 19, 2.833868),
}


@pytest.mark.parametrize("folder", [GPT_RUN, LSTM_RUN], ids=["gpt", "lstm"])
def test_an_lm_run_from_before_the_redesign_generates_resumes_and_converts(folder, tmp_path, monkeypatch, capsys):
    run = tmp_path / folder.name
    shutil.copytree(folder, run)
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    text, val_after_resume = LM_EXPECTED[folder]
    assert cli("generate", run.name, "--prompt", "friends", "--max-new-tokens", "20", "--temperature", "0") == 0
    assert capsys.readouterr().out.strip() == text
    assert cli("train", "gpt" if folder == GPT_RUN else "lstm", "--resume", run.name, "--steps", "6", "--quiet",
               "--no-sample") == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_loss"] for r in rows if "val_loss" in r][-1] == val_after_resume
    if folder == GPT_RUN:
        assert cli("convert", run.name, "hf-out", "--to", "hf") == 0
        assert (tmp_path / "hf-out" / "model.safetensors").is_file()
