"""Recurrent language models: learning, truncated BPTT with carried state, generation, resume, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.checkpoint import save_model
from attnlab.errors import AttnlabError
from attnlab.inference.sampling import SamplingConfig, stream_tokens
from attnlab.models.recurrent import (
    GRULM,
    LSTMLM,
    PRESETS,
    RNNLM,
    LSTMLMConfig,
    RNNLMConfig,
)
from attnlab.models.registry import load_model
from attnlab.recipes.tbptt import TBPTTObjective
from attnlab.training.trainer import TrainConfig, Trainer

MODELS = [RNNLM, LSTMLM, GRULM]
TEXT = "to be or not to be, that is it. " * 12
VOCAB = sorted(set(TEXT))
IDS = torch.tensor([VOCAB.index(ch) for ch in TEXT])


def tiny(cls, **overrides):
    values = dict(vocab_size=len(VOCAB), n_embd=16, hidden_size=64, n_layer=1, context_length=16)
    return cls(cls.config_class(**{**values, **overrides}))


@pytest.mark.parametrize("cls", MODELS)
def test_each_lm_learns_a_repeating_text(cls):
    torch.manual_seed(0)
    model = tiny(cls)
    objective = TBPTTObjective(IDS, IDS, context_length=16)
    config = TrainConfig(steps=150, batch_size=4, lr=2e-2, warmup_steps=5, eval_every=1000, eval_iters=4,
                         weight_decay=0.0)
    result = Trainer(model, objective, config, progress=False).fit()
    start = result.history[0]["loss"]
    assert start > 2.0  # about log(len(VOCAB)) before training
    assert result.val_loss < 0.15, result.val_loss


@pytest.mark.parametrize("cls", MODELS)
def test_carried_state_generation_equals_rerunning_the_prefix(cls):
    torch.manual_seed(1)
    model = tiny(cls, n_layer=2, dropout=0.1).eval()
    ids = torch.randint(len(VOCAB), (2, 12))
    with torch.no_grad():
        full = model(ids)
        state = None  # zeros
        steps = []
        logits, state = model.generation_step(ids[:, :5], state)  # a prompt, then one token at a time
        steps.append(logits)
        for t in range(5, 12):
            logits, state = model.generation_step(ids[:, t : t + 1], state)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("cls", MODELS)
def test_sampling_with_and_without_carried_state_agree(cls):
    torch.manual_seed(2)
    model = tiny(cls).eval()
    prompt = [VOCAB.index(ch) for ch in "to be "]
    carried = list(stream_tokens(model, prompt, SamplingConfig(max_new_tokens=15, temperature=0)))
    no_cache = SamplingConfig(max_new_tokens=15, temperature=0, use_cache=False)
    rerun = list(stream_tokens(model, prompt, no_cache))
    assert carried == rerun and len(carried) == 15
    sampled = [list(stream_tokens(model, prompt, SamplingConfig(max_new_tokens=10, temperature=1.0, seed=5,
                                                                use_cache=cache))) for cache in (True, False)]
    assert sampled[0] == sampled[1]


def test_tbptt_batches_are_consecutive_windows_of_parallel_streams():
    ids = torch.arange(1000)
    objective = TBPTTObjective(ids, ids, context_length=10)
    length = 1000 // 4
    for step in (0, 1, 5):
        batch = objective.batch("train", step, 4)
        for b in range(4):
            start = b * length + step * 10
            assert batch["x"][b].tolist() == list(range(start, start + 10))
            assert batch["y"][b].tolist() == list(range(start + 1, start + 11))
    windows = (length - 1) // 10
    assert torch.equal(objective.batch("train", windows, 4)["x"], objective.batch("train", 0, 4)["x"])
    assert objective.batch("val", -1, 4)["window"].tolist() == [0] * 4  # eval batch -1 - i is window i
    assert objective.batch("val", -3, 4)["window"].tolist() == [2] * 4


@pytest.mark.parametrize("cls", [RNNLM, LSTMLM])
def test_tbptt_carries_state_across_windows(cls):
    """Window 2's loss with carried state equals the loss of its tokens after reading windows 0-2 at once."""
    torch.manual_seed(3)
    model = tiny(cls, n_layer=2).eval()
    ids = torch.randint(len(VOCAB), (400,))
    objective = TBPTTObjective(ids, ids, context_length=8)
    with torch.no_grad():
        for step in range(3):
            batch = objective.batch("train", step, 2)
            loss = objective.loss(model, batch)
        length = 400 // 2
        x = torch.stack([ids[b * length : b * length + 24] for b in range(2)])
        y = torch.stack([ids[b * length + 1 : b * length + 25] for b in range(2)])
        logits = model(x)[:, 16:]
        ce = torch.nn.functional.cross_entropy
        expected = ce(logits.reshape(-1, logits.size(-1)), y[:, 16:].reshape(-1))
        fresh = ce(model(x[:, 16:]).reshape(-1, logits.size(-1)), y[:, 16:].reshape(-1))
    assert torch.allclose(loss, expected, atol=1e-5)
    assert not torch.allclose(loss, fresh, atol=1e-3)  # the state made a difference
    state = objective.state_tensors()
    assert state["next_window"].tolist() == [3, 3]
    assert set(state) == ({"h", "c", "next_window"} if cls is LSTMLM else {"h", "next_window"})


def test_gradient_accumulation_slices_keep_each_streams_state():
    """Slicing a batch (gradient accumulation) gives the same losses as the whole batch."""
    torch.manual_seed(4)
    model = tiny(GRULM).eval()
    ids = torch.randint(len(VOCAB), (600,))
    whole, sliced = TBPTTObjective(ids, ids, context_length=8), TBPTTObjective(ids, ids, context_length=8)
    from attnlab.training.trainer import slice_batch

    with torch.no_grad():
        for step in range(3):
            a = whole.loss(model, whole.batch("train", step, 4))
            batch = sliced.batch("train", step, 4)
            halves = [sliced.loss(model, slice_batch(batch, i, 2)) for i in range(2)]
            b = (halves[0] + halves[1]) / 2
            assert torch.allclose(a, b, atol=1e-6)


def test_resume_continues_bit_for_bit(tmp_path):
    def fresh():
        torch.manual_seed(0)
        model = tiny(LSTMLM, n_layer=2, dropout=0.2)
        config = TrainConfig(steps=6, batch_size=4, lr=1e-2, warmup_steps=2, eval_every=100, eval_iters=1,
                             ckpt_every=100)
        return model, TBPTTObjective(IDS, IDS, context_length=16), config

    model, objective, config = fresh()
    Trainer(model, objective, config, progress=False).fit()
    model_b, objective_b, config_b = fresh()
    first = Trainer(model_b, objective_b, config_b, run_dir=tmp_path, progress=False)
    for _ in range(3):
        first.train_step()
    first.save_checkpoint()
    model_c, objective_c, config_c = fresh()
    second = Trainer(model_c, objective_c, config_c, run_dir=tmp_path, progress=False)
    second.resume()
    assert second.step == 3 and objective_c.state_tensors()["next_window"].tolist() == [3] * 4
    second.fit()
    for (name, a), (_, b) in zip(model.state_dict().items(), model_c.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("cls", MODELS)
def test_save_load_round_trip(tmp_path, cls):
    torch.manual_seed(5)
    model = tiny(cls, n_layer=2).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert type(loaded) is cls and loaded.config == model.config
    ids = torch.randint(len(VOCAB), (1, 9))
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == cls.model_type


def test_lstm_forget_gate_starts_open():
    model = LSTMLM(LSTMLMConfig(vocab_size=10, n_embd=8, hidden_size=6, n_layer=2, forget_bias=1.0))
    for layer in range(2):
        bias = getattr(model.rnn.rnn, f"bias_ih_l{layer}") + getattr(model.rnn.rnn, f"bias_hh_l{layer}")
        assert torch.all(bias[6:12] == 1.0)


def test_presets_build_and_bad_configs_raise():
    for name in PRESETS:
        assert RNNLM.from_preset(name, vocab_size=30).parameter_count() > 0
    with pytest.raises(AttnlabError, match="tie_weights"):
        RNNLMConfig(n_embd=8, hidden_size=16, tie_weights=True)
    with pytest.raises(AttnlabError, match="hidden_size"):
        RNNLMConfig(hidden_size=0)
    with pytest.raises(AttnlabError, match="dropout"):
        RNNLMConfig(dropout=1.5)
    with pytest.raises(AttnlabError, match="unknown preset"):
        GRULM.from_preset("huge")
    with pytest.raises(AttnlabError, match="too few"):
        TBPTTObjective(IDS[:40], IDS[:40], context_length=16).batch("train", 0, 4)
    model = tiny(RNNLM)
    with pytest.raises(AttnlabError, match="token ids"):
        model(torch.tensor([[len(VOCAB)]]))
    tied = RNNLM(RNNLMConfig(vocab_size=10, n_embd=8, hidden_size=8, n_layer=1, tie_weights=True))
    assert tied.lm_head.weight is tied.tok_emb.weight


def test_cli_train_generate_and_resume(tmp_path, capsys):
    from attnlab.cli import main

    data = tmp_path / "play.txt"
    data.write_text("CASSIUS: Men at some time are masters of their fates.\n" * 40, encoding="utf-8")
    run = tmp_path / "run"
    common = ["--data", str(data), "--preset", "tiny", "--batch-size", "4", "--quiet", "--no-sample",
              "--set", "eval_iters=2", "--set", "eval_every=5", "--set", "bptt=16"]
    with pytest.raises(SystemExit) as done:
        main(["train", "lstm", *common, "--steps", "4", "--out", str(run)])
    assert done.value.code == 0
    assert json.loads((run / "config.json").read_text())["model_type"] == "lstm_lm"
    with pytest.raises(SystemExit) as done:
        main(["train", "lstm", "--resume", str(run), "--steps", "6", "--quiet", "--no-sample"])
    assert done.value.code == 0
    assert json.loads((run / "trainer_state.json").read_text())["step"] == 6
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["generate", str(run), "--prompt", "CASSIUS:", "--max-new-tokens", "20", "--seed", "0"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("CASSIUS:") and len(out) >= len("CASSIUS:") + 20
    with pytest.raises(SystemExit) as done:
        main(["train", "gru", *common, "--steps", "2", "--out", str(tmp_path / "bad"), "--set", "n_layers=3"])
    assert done.value.code == 2
    assert "no such setting" in capsys.readouterr().err
