"""Issue 11: the speedrun options of the GPT, Muon + AdamW, the gpt-speedrun preset."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.layers.attention import MultiHeadAttention
from attnlab.layers.position import Rotary
from attnlab.models.gpt import GPT, PRESETS, GPTConfig
from attnlab.recipes.lm import GPT_PRESET_TRAINING as PRESET_TRAINING
from attnlab.training.muon import GroupedMuon, MuonWithAdamW, newton_schulz, split_parameters
from attnlab.training.optim import build_optimizer
from attnlab.training.state import flatten_optimizer, unflatten_optimizer
from attnlab.training.trainer import TrainConfig, Trainer

TINY = dict(vocab_size=16, context_length=24, n_layer=2, n_head=2, n_embd=32)
TEXT = "to be or not to be, that is the question. " * 40
OPTIONS = {
    "classic": {},
    "rope": dict(pos="rope"),
    "qk_norm": dict(qk_norm=True),
    "relu2": dict(mlp="relu2"),
    "swiglu": dict(mlp="swiglu"),
    "relu": dict(mlp="relu"),
    "rmsnorm": dict(norm="rmsnorm"),
    "zero_init_proj": dict(zero_init_proj=True),
    "zero_init_untied": dict(zero_init_proj=True, tie_weights=False),
    "logit_softcap": dict(logit_softcap=5.0),
    "untied_head": dict(tie_weights=False),
    "speedrun_model": {k: v for k, v in PRESETS["gpt-speedrun"].items()
                       if k not in ("n_layer", "n_head", "n_embd", "context_length")},
}


def text_ids() -> torch.Tensor:
    chars = sorted(set(TEXT))
    return torch.tensor([chars.index(c) for c in TEXT])


def train_losses(model_options: dict, optimizer: str = "adamw", steps: int = 30, **train) -> list[float]:
    """Loss of every step of a tiny GPT on a repeating text (fixed batches, fixed seed)."""
    torch.manual_seed(0)
    ids = text_ids()
    model = GPT(GPTConfig(**{**TINY, "vocab_size": int(ids.max()) + 1, **model_options}))
    config = TrainConfig(optimizer=optimizer, lr=train.pop("lr", 3e-3), weight_decay=0.0, **train)
    opt = build_optimizer(model, config)
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        starts = torch.randint(len(ids) - 25, (8,), generator=gen)
        window = ids[starts[:, None] + torch.arange(25)]
        loss = model.loss(window[:, :-1], window[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


# ---- every option trains ---------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_trains_a_tiny_model(name):
    losses = train_losses(OPTIONS[name])
    start, end = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert end < 0.7 * start, f"{name}: loss {start:.3f} -> {end:.3f}"


@pytest.mark.parametrize("options", [{}, OPTIONS["speedrun_model"]], ids=["classic", "speedrun_model"])
def test_muon_trains_a_tiny_model(options):
    losses = train_losses(options, optimizer="muon", muon_lr=0.02)
    start, end = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert end < 0.7 * start, f"loss {start:.3f} -> {end:.3f}"


def test_options_change_the_model_but_the_default_is_the_classic_gpt():
    torch.manual_seed(5)
    classic = GPT(GPTConfig(**TINY))
    torch.manual_seed(5)
    explicit = GPT(GPTConfig(**TINY, pos="learned", mlp="gelu", norm="layernorm", qk_norm=False,
                             zero_init_proj=False, logit_softcap=0.0, tie_weights=True))
    ids = torch.randint(0, 16, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(classic(ids), explicit(ids))
    for name, options in OPTIONS.items():
        if name in ("classic", "zero_init_proj"):
            continue
        torch.manual_seed(5)
        with torch.no_grad():
            assert not torch.allclose(GPT(GPTConfig(**TINY, **options))(ids), classic(ids)), name


def test_zero_init_zeroes_the_output_projections_and_an_untied_head():
    model = GPT(GPTConfig(**TINY, zero_init_proj=True, tie_weights=False))
    for block in model.blocks:
        assert not block.attn.proj.weight.any() and not block.mlp.proj.weight.any()
        assert block.attn.qkv.weight.any()
    assert not model.lm_head.weight.any() and model.tok_emb.weight.any()
    tied = GPT(GPTConfig(**TINY, zero_init_proj=True))
    assert tied.lm_head.weight.any()  # the head is the embedding: never zeroed


def test_logit_softcap_squashes_the_logits_with_tanh():
    torch.manual_seed(0)
    capped = GPT(GPTConfig(**TINY, logit_softcap=2.0, tie_weights=False))
    torch.nn.init.normal_(capped.lm_head.weight, std=1.0)
    plain = GPT(GPTConfig(**TINY, tie_weights=False))
    plain.load_state_dict(capped.state_dict())
    ids = torch.randint(0, 16, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        raw, squashed = plain(ids), capped(ids)
    assert raw.abs().max() > 4  # well past the cap, so the test means something
    torch.testing.assert_close(squashed, 2.0 * torch.tanh(raw / 2.0))
    assert squashed.abs().max() <= 2.0


# ---- RoPE ------------------------------------------------------------------------------------
def test_rotary_scores_depend_only_on_the_distance():
    rope = Rotary(8, 32)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(m: int, n: int) -> float:
        return float((rope(q, m) * rope(k, n)).sum())
    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-5)
    assert score(7, 7) == pytest.approx(float((q * k).sum()), abs=1e-5)  # distance 0: plain dot product
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)
    assert torch.allclose(rope(q, 5).norm(), q.norm())  # a rotation keeps the length


@pytest.mark.parametrize("qk_norm", [False, True])
def test_rope_attention_with_a_kv_cache_equals_without(qk_norm):
    torch.manual_seed(0)
    attn = MultiHeadAttention(32, 4, causal=True, qk_norm=qk_norm).eval()
    rope = Rotary(8, 20)
    x = torch.randn(2, 20, 32)
    with torch.no_grad():
        full, _ = attn(x, rope=rope)
        from attnlab.layers.attention import KVCache

        cache = KVCache(20)
        parts = [attn(x[:, :7], cache=cache, rope=rope)[0]]  # a prompt, then one position at a time
        parts += [attn(x[:, t : t + 1], cache=cache, rope=rope)[0] for t in range(7, 20)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def test_rope_gpt_with_a_kv_cache_equals_without():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**TINY, **OPTIONS["speedrun_model"]})).eval()
    with torch.no_grad():  # zero-initialised projections and head would make every logit 0
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (1.0 if p.dim() == 1 else 0.0))
    ids = torch.randint(0, 16, (2, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache()
        steps = [model(ids[:, :5], cache=cache)]
        steps += [model(ids[:, t : t + 1], cache=cache) for t in range(5, 24)]
        last = model(ids[:, :10], last_only=True)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last, full[:, 9:10], atol=1e-5, rtol=1e-5)
    # positions matter: the same tokens shifted by one give other logits at the same token
    with torch.no_grad():
        shifted = model(torch.cat([ids[:, :1], ids], 1)[:, :24])
    assert not torch.allclose(shifted[:, 1:], full[:, :-1], atol=1e-4)


# ---- Muon ------------------------------------------------------------------------------------
GROUPING_CASES = {"classic": {}, "untied": dict(tie_weights=False),
                  "swiglu_qk_rope": dict(mlp="swiglu", qk_norm=True, pos="rope"),
                  "nobias_rms": dict(bias=False, norm="rmsnorm"), "nonorm": dict(norm="none")}


@pytest.mark.parametrize("options", list(GROUPING_CASES.values()), ids=list(GROUPING_CASES))
def test_muon_grouping_puts_every_parameter_in_exactly_one_group(options):
    model = GPT(GPTConfig(**{**TINY, **options}))
    optimizer = build_optimizer(model, TrainConfig(optimizer="muon"))
    grouped = [p for g in optimizer.param_groups for p in g["params"]]
    distinct = {id(p): p for p in model.parameters()}
    assert len(grouped) == len({id(p) for p in grouped}) == len(distinct)
    assert {id(p) for p in grouped} == set(distinct)
    by_name = {g["name"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[i] for i in by_name["muon"]}
    assert muon == {n for n, p in model.named_parameters() if p.dim() == 2 and n.startswith("blocks.")}
    assert "tok_emb.weight" in {names[i] for i in by_name["adamw_decay"]}
    assert all(distinct[i].dim() == 1 for i in by_name["adamw_no_decay"])
    assert [g["lr_scale"] for g in optimizer.param_groups if g["name"] == "muon"] == [0.02 / 1e-3]


def test_grouped_muon_is_torch_muon():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY, mlp="swiglu"))
    twin = copy.deepcopy(model)
    ours = GroupedMuon(split_parameters(model)[0], lr=0.02, weight_decay=0.1)
    theirs = torch.optim.Muon(split_parameters(twin)[0], lr=0.02, weight_decay=0.1)
    ids = torch.randint(0, 16, (4, 24), generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        for m, opt in ((model, ours), (twin, theirs)):
            m(ids).logsumexp(-1).mean().backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_newton_schulz_gives_near_orthogonal_rows():
    g = torch.randn(3, 16, 48, generator=torch.Generator().manual_seed(0))
    x = newton_schulz(g).float()
    singular = torch.linalg.svdvals(x)
    assert singular.min() > 0.5 and singular.max() < 1.5  # U S' V^T with S' in about (0.7, 1.2)
    assert newton_schulz(g[0]).shape == (16, 48)


def muon_trainer(run_dir, steps: int = 6) -> Trainer:
    from attnlab.data.batching import LanguageModelObjective

    ids = text_ids()
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**TINY, "vocab_size": int(ids.max()) + 1, **OPTIONS["speedrun_model"]}))
    objective = LanguageModelObjective(ids[:1400], ids[1400:], 24, seed=3)
    config = TrainConfig(steps=steps, batch_size=4, optimizer="muon", lr=3e-3, muon_lr=0.03, warmup_steps=2,
                         eval_every=3, eval_iters=1, ckpt_every=3)
    return Trainer(model, objective, config, run_dir=run_dir, progress=False)


def test_muon_state_survives_flatten_and_unflatten_exactly():
    trainer = muon_trainer(None)
    for _ in range(3):
        trainer.train_step()
    saved = trainer.optimizer.state_dict()
    tensors, meta = flatten_optimizer(saved)
    meta = json.loads(json.dumps(meta))  # what trainer_state.json holds
    fresh = muon_trainer(None).optimizer
    assert isinstance(fresh, MuonWithAdamW)
    fresh.load_state_dict(unflatten_optimizer(tensors, meta))
    again = fresh.state_dict()
    assert set(again["state"]) == set(saved["state"])
    for index, entry in saved["state"].items():
        for key, value in entry.items():
            assert torch.equal(again["state"][index][key], value), (index, key)
    assert [{k: v for k, v in g.items() if k != "ns_coefficients"} for g in again["param_groups"]] == [
        {k: v for k, v in g.items() if k != "ns_coefficients"} for g in saved["param_groups"]]


def test_muon_checkpoint_and_resume_repeat_the_uninterrupted_run_bit_for_bit(tmp_path):
    straight = muon_trainer(tmp_path / "straight")
    straight.fit()
    stopped = muon_trainer(tmp_path / "stopped")
    stopped.callbacks.append(lambda trainer, row: trainer.step >= 3)  # stop (and save) at step 3
    stopped.fit()
    assert stopped.step == 3
    resumed = muon_trainer(tmp_path / "stopped")
    resumed.resume()
    momentum = resumed.optimizer.parts[0].state
    assert all(s["momentum_buffer"].any() for s in momentum.values())
    resumed.fit()
    assert resumed.step == straight.step == 6
    for (name, a), b in zip(straight.raw_model.state_dict().items(), resumed.raw_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_bad_muon_learning_rate_is_one_clear_error():
    with pytest.raises(AttnlabError, match="muon_lr"):
        build_optimizer(GPT(GPTConfig(**TINY)), TrainConfig(optimizer="muon", muon_lr=0.0))


def test_an_adamw_checkpoint_cannot_be_loaded_into_muon():
    adamw = build_optimizer(GPT(GPTConfig(**TINY)), TrainConfig())
    muon = build_optimizer(GPT(GPTConfig(**TINY)), TrainConfig(optimizer="muon"))
    with pytest.raises(ValueError, match="Muon"):
        muon.load_state_dict(adamw.state_dict())


# ---- the preset ------------------------------------------------------------------------------
def test_speedrun_preset_keeps_the_classic_parameter_count_within_ten_percent():
    classic = GPT(GPTConfig(**{**PRESETS["gpt-micro"], "vocab_size": 65}))
    fast = GPT(GPTConfig(**{**PRESETS["gpt-speedrun"], "vocab_size": 65}))
    assert abs(fast.parameter_count() / classic.parameter_count() - 1) <= 0.10
    assert fast.config.n_layer == 4 and fast.config.n_embd == 128 and fast.config.context_length == 64


def test_speedrun_preset_training_settings_are_valid():
    config = TrainConfig(**PRESET_TRAINING["gpt-speedrun"])
    assert config.optimizer == "muon"
    build_optimizer(GPT(GPTConfig(**{**PRESETS["gpt-speedrun"], "vocab_size": 65})), config)
    assert set(PRESET_TRAINING) <= set(PRESETS)


def test_converting_a_rope_model_to_gpt2_is_refused():
    from attnlab.inference.hf_gpt2 import to_hf

    model = GPT(GPTConfig(**{**PRESETS["gpt-speedrun"], "vocab_size": 65}))
    with pytest.raises(AttnlabError, match="rope"):
        to_hf(model, "/nonexistent/never-written")


# ---- end to end ------------------------------------------------------------------------------
def cli(*args: str):
    import subprocess
    import sys

    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "attnlab", *args], capture_output=True, text=True, env=env)


def test_train_generate_resume_and_convert_the_speedrun_preset(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT * 3, encoding="utf-8")
    run = tmp_path / "run"
    common = ["--set", "eval_every=4", "--set", "eval_iters=1", "--set", "ckpt_every=4", "--batch-size", "4",
              "--quiet", "--no-sample"]
    first = cli("train", "gpt", "--data", str(tmp_path / "corpus.txt"), "--preset", "gpt-speedrun",
                "--steps", "4", "--out", str(run), *common)  # Muon comes with the preset
    assert first.returncode == 0, first.stderr
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["config"]["optimizer"] == "muon"
    assert json.loads((run / "config.json").read_text())["config"]["pos"] == "rope"
    resumed = cli("train", "gpt", "--resume", str(run), "--steps", "8", "--quiet", "--no-sample")
    assert resumed.returncode == 0, resumed.stderr
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["step"] == 8 and state["config"]["optimizer"] == "muon"  # the run's optimizer, restored
    generated = cli("generate", str(run), "--prompt", "to be", "--max-new-tokens", "20", "--seed", "1")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith("to be") and len(generated.stdout.strip()) > len("to be")
    refused = cli("convert", str(run), str(tmp_path / "hf"), "--to", "hf")
    assert refused.returncode == 2 and "rope" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "hf").exists()


def test_the_preset_brings_its_training_settings(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT * 3, encoding="utf-8")
    run = tmp_path / "run"
    result = cli("train", "gpt", "--data", str(tmp_path / "corpus.txt"), "--preset", "gpt-speedrun",
                 "--steps", "2", "--batch-size", "4", "--out", str(run), "--set", "eval_iters=1", "--quiet",
                 "--no-sample")
    assert result.returncode == 0, result.stderr
    config = json.loads((run / "trainer_state.json").read_text())["config"]
    assert {k: config[k] for k in PRESET_TRAINING["gpt-speedrun"] if k != "steps"} == {
        k: v for k, v in PRESET_TRAINING["gpt-speedrun"].items() if k != "steps"}


# ---- the benchmark's bookkeeping -------------------------------------------------------------
@pytest.fixture(scope="module")
def bench():
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("speedrun_bench", folder / "speedrun.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_benchmark_corpus_is_the_first_plays_by_name_up_to_1_1m_characters(bench):
    from attnlab.data.corpora import _play_files, load_corpus

    text, plays = bench.speedrun_corpus()
    assert plays == list(_play_files())[: len(plays)]
    assert 1_090_000 < len(text) <= 1_100_000 and text.endswith("\n")
    assert text.startswith(load_corpus(plays[0]))
    assert sum(len(load_corpus(p)) + 1 for p in plays[:-1]) < len(text)  # the last play is cut short


def test_benchmark_variants_and_time_to_target(bench):
    assert bench.parse_variant("fast:optimizer=muon,muon_lr=0.05,qk_norm=true") == (
        "fast", {"optimizer": "muon", "muon_lr": 0.05, "qk_norm": True})
    with pytest.raises(AttnlabError):
        bench.parse_variant("no-settings-separator")
    with pytest.raises(AttnlabError, match="unknown variant"):
        bench.variant_settings("warp-drive", {})
    assert bench.variant_settings("gpt-speedrun", {})["optimizer"] == "muon"

    def curve(*points):
        return [{"step": s, "val_loss": v, "time": t, "cpu_time": t} for s, v, t in points]

    result = {"L_star": 2.0, "runs": {
        "classic": {"parameters": 100, "step": 300, "time": 30.0, "cpu_time": 30.0, "done": True,
                    "curve": curve((100, 2.5, 10.0), (200, 2.1, 20.0), (300, 2.0, 30.0))},
        "fast": {"parameters": 101, "step": 200, "time": 12.0, "cpu_time": 12.0, "done": True,
                 "curve": curve((100, 2.05, 6.0), (200, 1.99, 12.0))},
        "slow": {"parameters": 99, "step": 300, "time": 45.0, "cpu_time": 45.0, "done": True,
                 "curve": curve((100, 2.6, 15.0), (200, 2.3, 30.0), (300, 2.01, 45.0))},
    }}
    rows = {row["name"]: row for row in bench.summarise(result)}
    assert rows["fast"]["steps_to_target"] == 200 and rows["fast"]["time_ratio"] == pytest.approx(0.4)
    assert rows["classic"]["time_ratio"] == 1.0
    assert not rows["slow"]["reached"] and "time_ratio" not in rows["slow"]
    assert bench.first_reaching(result["runs"]["fast"]["curve"], 2.0)["step"] == 200
