"""Hugging Face GPT-2 interop: model weights both ways, the run's tokenizer, refusals; checkpoint-loading errors."""

import json
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local: never reach for the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from attnlab.checkpoint import save_model
from attnlab.cli import main
from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, CharTokenizer, load_tokenizer
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT, GPTConfig, preset_config
from attnlab.models.registry import load_model

transformers = pytest.importorskip("transformers")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "attnlab", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=100, n_positions=32)
    model = transformers.GPT2LMHeadModel(config).eval()
    path = tmp_path_factory.mktemp("hf") / "gpt2"
    model.save_pretrained(path)
    return path, model


def test_hf_to_attnlab_to_hf_round_trip_keeps_logits(hf_dir, tmp_path):
    path, hf = hf_dir
    assert cli("convert", str(path), str(tmp_path / "at"), "--to", "attnlab").returncode == 0
    assert cli("convert", str(tmp_path / "at"), str(tmp_path / "hf2"), "--to", "hf").returncode == 0
    ours = load_model(tmp_path / "at")
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf2").eval()
    x = torch.randint(0, 100, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = hf(x).logits
        assert (ours(x) - reference).abs().max() < 1e-4
        assert (back(x).logits - reference).abs().max() < 1e-4


def test_attnlab_model_with_untied_head_converts(tmp_path):
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=50, context_length=16, n_layer=1, n_head=2, n_embd=32, tie_weights=False)).eval()
    save_model(model, tmp_path / "m")
    assert cli("convert", str(tmp_path / "m"), str(tmp_path / "hf"), "--to", "hf").returncode == 0
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    x = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        assert (hf(x).logits - model(x)).abs().max() < 1e-4


def test_rope_model_is_refused_with_a_clear_message(tmp_path):
    save_model(GPT(GPTConfig(vocab_size=20, context_length=8, n_layer=1, n_head=2, n_embd=16, pos="rope")),
               tmp_path / "rope")
    result = cli("convert", str(tmp_path / "rope"), str(tmp_path / "out"), "--to", "hf")
    assert result.returncode == 2
    assert "rope" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["missing_weights", "truncated", "not_safetensors", "missing_config",
                                    "bad_json"])
def test_damaged_checkpoint_gives_one_clear_error(tmp_path, damage):
    save_model(GPT(GPTConfig(vocab_size=20, context_length=8, n_layer=1, n_head=2, n_embd=16)), tmp_path)
    weights, config = tmp_path / "model.safetensors", tmp_path / "config.json"
    if damage == "missing_weights":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "not_safetensors":
        weights.write_bytes(b"\x80\x04\x95 this is a pickle, not safetensors")
    elif damage == "missing_config":
        config.unlink()
    else:
        config.write_text("{not json")
    with pytest.raises(AttnlabError):
        load_model(tmp_path)
    result = cli("generate", str(tmp_path), "--max-new-tokens", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("attnlab: error:") and "Traceback" not in result.stderr


def test_model_class_load_refuses_another_kind_of_model(tmp_path):
    from attnlab.models.recurrent import LSTMLM

    GPT(GPTConfig(vocab_size=20, context_length=8, n_layer=1, n_head=2, n_embd=16)).save(tmp_path)
    assert isinstance(GPT.load(tmp_path), GPT)
    with pytest.raises(AttnlabError, match="holds a 'gpt' model, not a LSTMLM"):
        LSTMLM.load(tmp_path)


# ---- runs with their tokenizer -> transformers' AutoTokenizer and pipeline ----------------------------------------

CORPUS = "Friends, Romans, countrymen, lend me your ears;\nI come to bury Caesar, not to praise him.\n" * 40
PROMPT = "Friends, Romans, "


def run_main(*args, capsys=None):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A char and a bpe run of gpt-nano (GPT-2's architecture), a few dozen steps: enough for varied text."""
    root = tmp_path_factory.mktemp("runs")
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    runs = {}
    for kind, extra in (("char", []), ("bpe", ["--tokenizer", "bpe", "--vocab-size", "300"])):
        runs[kind] = root / kind
        code = run_main("train", "gpt", "--data", str(root / "corpus.txt"), "--preset", "gpt-nano", "--steps", "40",
                        "--batch-size", "8", "--set", "eval_every=40", "--set", "eval_iters=1", "--quiet",
                        "--no-sample", "--out", str(runs[kind]), *extra)
        assert code == 0
    return runs


def attnlab_greedy(run, prompt, n, capsys):
    capsys.readouterr()
    assert run_main("generate", str(run), "--prompt", prompt, "--max-new-tokens", str(n), "--temperature", "0") == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    return out[:-1]  # generate ends its sample with a newline of its own


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_converted_run_generates_in_a_transformers_pipeline_as_attnlab_does(trained, kind, tmp_path, capsys):
    out = tmp_path / "hf"
    assert run_main("convert", str(trained[kind]), str(out), "--to", "hf") == 0
    assert f"{kind} tokenizer" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json"} <= {p.name for p in out.iterdir()}
    ours = load_tokenizer(trained[kind])
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = CORPUS[:300]
    assert hf_tok(text)["input_ids"] == ours.encode(text)  # the same ids, not just the same text
    assert hf_tok.decode(hf_tok(text)["input_ids"]) == text
    assert hf_tok.decode(ours.encode(" ,;\n")) == " ,;\n"  # no spaces added, none cleaned away
    generator = transformers.pipeline("text-generation", model=str(out), tokenizer=str(out))
    new = 30
    expected = attnlab_greedy(trained[kind], PROMPT, new, capsys)
    got = generator(PROMPT, max_new_tokens=new, do_sample=False)[0]["generated_text"]
    assert got == expected
    assert len(set(got[len(PROMPT):])) > 2  # a trained model: not one character over and over


def test_char_tokenizer_with_specials_round_trips_through_hugging_face():
    from tokenizers import Tokenizer as HFTokenizer

    from attnlab.data.hf_tokenizer import char_tokenizer_json, tokenizer_from_hf_json

    ours = CharTokenizer.train("abc xyz.\n", specials=SEQ2SEQ_SPECIALS)
    data = char_tokenizer_json(ours)
    hf = HFTokenizer.from_str(json.dumps(data))
    for text in ("abc xyz.\n", " . ", "a\u00e9b"):  # an unseen character is <unk> in both
        ids = hf.encode(text).ids
        assert ids == ours.encode(text)
        assert hf.decode(ids, skip_special_tokens=False) == ours.decode(ids, skip_special=False)
    plain = CharTokenizer.train("abc")
    hf_plain = HFTokenizer.from_str(json.dumps(char_tokenizer_json(plain)))
    assert hf_plain.encode("a\u00e9b").ids == plain.encode("a\u00e9b", unknown="skip")  # no <unk>: dropped
    back = tokenizer_from_hf_json(data)
    assert isinstance(back, CharTokenizer) and back.to_dict() == ours.to_dict()


def test_hf_folder_of_a_char_run_converts_back_with_its_char_tokenizer(trained, tmp_path, capsys):
    assert run_main("convert", str(trained["char"]), str(tmp_path / "hf"), "--to", "hf") == 0
    assert run_main("convert", str(tmp_path / "hf"), str(tmp_path / "back"), "--to", "attnlab") == 0
    assert "char tokenizer" in capsys.readouterr().out
    assert load_tokenizer(tmp_path / "back").to_dict() == load_tokenizer(trained["char"]).to_dict()
    assert attnlab_greedy(tmp_path / "back", PROMPT, 20, capsys) == attnlab_greedy(trained["char"], PROMPT, 20, capsys)


def error_of(capsys, *args):
    assert run_main(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab: error:") and err.count("attnlab: error:") == 1 and "Traceback" not in err
    return err


def test_refused_runs_say_why_and_what_converts(tmp_path, capsys):
    from attnlab.models.recurrent import LSTMLM, LSTMLMConfig
    from attnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig

    speedrun = {"n_layer": 4, "n_head": 4, "n_embd": 128, "context_length": 16, "pos": "rope", "qk_norm": True,
                "mlp": "relu2"}
    save_model(GPT(GPTConfig(vocab_size=20, **speedrun)), tmp_path / "speedrun")
    err = error_of(capsys, "convert", str(tmp_path / "speedrun"), str(tmp_path / "o1"), "--to", "hf")
    assert "rope" in err and "qk_norm" in err and "relu2" in err and "--preset gpt-micro" in err
    save_model(GPT(preset_config("gpt-play", vocab_size=20)), tmp_path / "default")  # `attnlab train gpt`'s model
    err = error_of(capsys, "convert", str(tmp_path / "default"), str(tmp_path / "o0"), "--to", "hf")
    assert "rope" in err and "--preset gpt-micro --set n_layer=3" in err
    save_model(GPT(GPTConfig(vocab_size=20, context_length=8, n_layer=1, n_head=2, n_embd=16, tie_weights=False,
                             logit_softcap=15.0)), tmp_path / "capped")
    err = error_of(capsys, "convert", str(tmp_path / "capped"), str(tmp_path / "o2"), "--to", "hf")
    assert "logit_softcap" in err and "gpt-nano" in err
    save_model(LSTMLM(LSTMLMConfig(vocab_size=20, n_embd=8, hidden_size=8)), tmp_path / "lstm")
    err = error_of(capsys, "convert", str(tmp_path / "lstm"), str(tmp_path / "o3"), "--to", "hf")
    assert "recurrent (LSTM)" in err and "attnlab train gpt --preset gpt-jc" in err
    save_model(Seq2Seq(Seq2SeqConfig(src_vocab_size=10, tgt_vocab_size=10, n_embd=8, hidden_size=8)),
               tmp_path / "bahdanau")
    err = error_of(capsys, "convert", str(tmp_path / "bahdanau"), str(tmp_path / "o4"), "--to", "hf")
    assert "translation run" in err and "attnlab translate" in err
    assert not any(p.name.startswith(("o", ".o")) for p in tmp_path.iterdir())  # nothing left behind
