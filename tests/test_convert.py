"""Hugging Face GPT-2 interop and checkpoint-loading errors (issue 2)."""

import subprocess
import sys

import pytest
import torch

from attnlab.checkpoint import save_model
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT, GPTConfig
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
