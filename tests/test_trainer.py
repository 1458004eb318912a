"""The trainer on a tiny GPT, in process: learning, accumulation, checkpoints, resume, MFU helpers."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.data.batching import LanguageModelObjective
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.models.registry import load_model
from attnlab.training import mfu
from attnlab.training.trainer import TrainConfig, Trainer


def pattern_ids(n: int) -> torch.Tensor:
    """A learnable stream: a repeating 13-token phrase with a little noise."""
    base = torch.arange(n) % 13
    noise = torch.randint(0, 20, (n,), generator=torch.Generator().manual_seed(0))
    return torch.where(torch.rand(n, generator=torch.Generator().manual_seed(1)) < 0.05, noise, base)


def make(init_seed: int = 0, dropout: float = 0.0, **train
         ) -> tuple[GPT, LanguageModelObjective, TrainConfig]:
    torch.manual_seed(init_seed)
    model = GPT(GPTConfig(vocab_size=20, context_length=16, n_layer=2, n_head=2, n_embd=32, dropout=dropout))
    objective = LanguageModelObjective(pattern_ids(4000), pattern_ids(1000), 16, seed=0)
    values = dict(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, eval_every=20, eval_iters=4, ckpt_every=20)
    return model, objective, TrainConfig(**{**values, **train})


def test_loss_drops_on_a_learnable_stream():
    model, objective, config = make()
    trainer = Trainer(model, objective, config, progress=False)
    before = trainer.evaluate()
    result = trainer.fit()
    assert result.step == 40
    assert result.val_loss < 0.6 * before, (before, result.val_loss)
    assert result.tokens == 40 * 8 * 16
    assert all("mfu" not in row for row in result.history)  # no published peak for a CPU


def test_gradient_accumulation_matches_one_big_batch():
    losses = []
    weights = []
    for accum in (1, 4):
        model, objective, config = make(steps=3, grad_accum=accum, eval_every=100)
        trainer = Trainer(model, objective, config, progress=False)
        losses.append([trainer.train_step()[0] for _ in range(3)])
        weights.append(model.blocks[0].attn.qkv.weight.detach().clone())
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    torch.testing.assert_close(weights[0], weights[1], atol=1e-5, rtol=1e-4)


def test_stop_checkpoint_resume_continues_exactly(tmp_path):
    model, objective, config = make(dropout=0.1)
    whole = Trainer(model, objective, config, progress=False).fit()

    model, objective, config = make(dropout=0.1)
    stop_at_20 = lambda trainer, row: trainer.step == 20  # noqa: E731 (a callback that stops the run)
    cut = Trainer(model, objective, config, run_dir=tmp_path / "cut", progress=False,
                  callbacks=[stop_at_20]).fit()
    assert cut.stopped_early and cut.step == 20
    state = json.loads((tmp_path / "cut" / "trainer_state.json").read_text())
    assert state["step"] == 20 and state["world_size"] == 1

    # other initial weights: everything must come from the files (dropout: so must the RNG state)
    model, objective, config = make(init_seed=99, dropout=0.1)
    trainer = Trainer(model, objective, config, run_dir=tmp_path / "cut", progress=False)
    trainer.resume()
    assert trainer.step == 20
    resumed = trainer.fit()
    assert resumed.step == 40
    assert resumed.val_loss == whole.val_loss  # bitwise


def test_matmul_peak_and_mfu_arithmetic():
    peak = mfu.measure_matmul_flops("cpu", n=256, repeats=2)
    assert peak["best"] >= peak["median"] > 1e8  # any CPU does 0.1 GFLOP/s
    assert mfu.mfu(tokens_per_sec=1000, flops_per_token=1e6, peak_flops=1e10) == pytest.approx(0.1)
    assert mfu.transformer_flops_per_token(100, n_layer=2, context_length=8, width=4) == 600 + 12 * 2 * 8 * 4
    assert mfu.gpu_peak_flops("cpu") is None


def test_gpu_peak_override(monkeypatch):
    monkeypatch.setenv(mfu.PEAK_ENV, "100")
    assert mfu.gpu_peak_flops("cpu") == 100e12


# ---- the GPU path's options, run on the CPU ------------------------------------------------------
# A CUDA machine is not always at hand; these options are device-agnostic PyTorch and run here too.


def test_bfloat16_autocast_learns_and_keeps_float32_weights(tmp_path):
    """``--dtype bfloat16``: matmuls in bf16 under autocast, weights, optimizer and checkpoint in fp32."""
    results = {}
    for dtype in ("float32", "bfloat16"):
        model, objective, config = make(dtype=dtype, steps=30, eval_every=30, ckpt_every=30)
        trainer = Trainer(model, objective, config, run_dir=tmp_path / dtype, progress=False)
        x = objective.batch("train", 0, 2)["x"]
        with trainer.autocast:
            logits = model(x)
        assert logits.dtype == (torch.bfloat16 if dtype == "bfloat16" else torch.float32)
        before = trainer.evaluate()
        results[dtype] = trainer.fit().val_loss
        assert results[dtype] < 0.7 * before, (dtype, before, results[dtype])
        assert all(p.dtype == torch.float32 for p in model.parameters())
    # bf16 keeps 8 bits of mantissa: the same run, slightly different numbers, the same learning
    assert results["bfloat16"] != results["float32"]
    assert results["bfloat16"] == pytest.approx(results["float32"], rel=0.1)
    saved = load_model(tmp_path / "bfloat16")
    assert all(p.dtype == torch.float32 for p in saved.parameters())


def test_compiled_model_trains_like_the_eager_one_and_saves_plain_weights(tmp_path, monkeypatch):
    """``--compile``: the same losses as eager, and a checkpoint without torch.compile's key prefix.

    The ``aot_eager`` backend traces exactly what inductor would compile (graphs, graph breaks,
    the wrapper module) without needing a C++ compiler, so the test stays quick.
    """
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, **kw: real_compile(module, backend="aot_eager", **kw))
    losses = {}
    for compile in (False, True):
        model, objective, config = make(compile=compile, steps=4, eval_every=100, ckpt_every=100)
        trainer = Trainer(model, objective, config, run_dir=tmp_path / str(compile), progress=False)
        assert (trainer.model is not model) == compile
        losses[compile] = [trainer.train_step()[0] for _ in range(4)]
        trainer.save_checkpoint()
    assert losses[True] == pytest.approx(losses[False], abs=1e-5)
    eager, compiled = load_model(tmp_path / "False"), load_model(tmp_path / "True")
    assert eager.state_dict().keys() == compiled.state_dict().keys()
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[key], value, atol=1e-5, rtol=0)


def test_adamw_is_fused_on_cpu():
    """The fused AdamW (one kernel over all tensors) runs on CPUs too, and steps like the default one."""
    model, objective, config = make(steps=3, eval_every=100)
    trainer = Trainer(model, objective, config, progress=False)
    assert trainer.optimizer.defaults["fused"] is True
    fused_losses = [trainer.train_step()[0] for _ in range(3)]
    model, objective, config = make(steps=3, eval_every=100)
    trainer = Trainer(model, objective, config, progress=False)
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"], "lr_scale": 1.0}
              for g in trainer.optimizer.param_groups]
    trainer.optimizer = torch.optim.AdamW(groups, lr=config.lr, foreach=True)
    assert not trainer.optimizer.param_groups[0]["fused"]
    assert fused_losses == pytest.approx([trainer.train_step()[0] for _ in range(3)], rel=1e-4)  # rounding only


def test_cli_bfloat16_on_cpu_trains_and_says_it_is_slow_there(tmp_path, capsys):
    from attnlab.cli import main

    with pytest.raises(SystemExit) as done:
        main(["train", "gpt", "--preset", "gpt-nano", "--steps", "2", "--batch-size", "4", "--dtype", "bfloat16",
              "--out", str(tmp_path / "bf16"), "--quiet", "--no-sample"])
    assert done.value.code == 0
    assert "--dtype bfloat16 on a CPU" in capsys.readouterr().err
    assert all(p.dtype == torch.float32 for p in load_model(tmp_path / "bf16").parameters())
