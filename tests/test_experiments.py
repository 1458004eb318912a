"""attnlab compare / ablate: the quick plans end to end, resume, and the shared metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.errors import AttnlabError
from attnlab.experiments import runner
from attnlab.experiments.ablate import AblateConfig, run_ablate
from attnlab.experiments.compare import (
    ALL_MODELS,
    LM_MODELS,
    TRANSLATION_MODELS,
    CompareConfig,
    mixed_length_task,
    run_compare,
)
from attnlab.experiments.metrics import by_length, heldout_lm_loss, items_in


def test_compare_quick_lists_every_model(tmp_path):
    config = CompareConfig.quick_config(out=tmp_path / "out", runs=tmp_path / "runs", progress=False)
    summary = run_compare(config)
    labels = {label for _, label in LM_MODELS.values()} | {v[2] for v in TRANSLATION_MODELS.values()}
    table = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    for label in labels | {"ELIZA (1966, rules)"}:
        assert f"| {label} |" in table, label
    assert len(summary["lm"]) == 4 and len(summary["translation"]) == 7
    for r in summary["lm"]:
        assert r["training"]["step"] == config.steps
        assert r["bits_per_char"] == pytest.approx(r["heldout_loss"] / math.log(2))
        # a dozen steps from scratch: near the uniform guess over ~60 characters, far above 2 nats
        assert 2.0 < r["heldout_loss"] < 5.0
        assert r["sample"].startswith("Friends, Romans, countrymen")
        assert r["training"]["parameters"] > 0 and r["training"]["tokens_per_sec"] > 0
    for r in summary["translation"]:
        assert set(r["by_k"]) == {"1", "2", "4", "8"}
        assert all(0.0 <= s["exact_match"] <= 1.0 and s["n"] >= 1 for s in r["by_k"].values())
        assert {e["k"] for e in r["examples"]} == {1, 2, 4, 8}
    assert len(summary["eliza"]["exchanges"]) == 4 and all(x["eliza"] for x in summary["eliza"]["exchanges"])
    for name in ("results.json", "lm_validation.png", "translation_length.png", "translation_validation.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert [r["label"] for r in saved["translation"]] == [v[2] for v in TRANSLATION_MODELS.values()]


def test_ablate_quick_table_and_plots(tmp_path):
    config = AblateConfig.quick_config(out=tmp_path / "out", progress=False)
    summary = run_ablate(config)
    # 4 + 4 + 3 + 4 members, but the base (2 layers... 4 heads, lr 1e-3, full block) is trained once
    assert sum(len(m) for m in summary["families"].values()) == 15
    assert len(summary["runs"]) == 13
    table = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    for label in ("1 layers", "7 layers", "8 heads", "lr 0.01", "lr 0.0001", "no layer norm", "no residual",
                  "no feed-forward"):
        assert f"| {label} |" in table
    for family in ("layers", "heads", "lr", "block"):
        assert (tmp_path / "out" / f"ablate_{family}.png").stat().st_size > 0
    runs = {r["name"]: r for r in summary["runs"]}
    assert all(r["training"]["step"] == config.steps for r in runs.values())
    # the switches change the model: no feed-forward has fewer parameters, no norm drops the norm weights
    base = runs["L2-H4-lr0.001"]["training"]["parameters"]
    assert runs["L2-H4-lr0.001-noffn"]["training"]["parameters"] < base
    assert runs["L2-H4-lr0.001-nonorm"]["training"]["parameters"] < base
    assert runs["L2-H4-lr0.001-noresidual"]["training"]["parameters"] == base


def test_interrupted_plan_resumes_where_it_stopped(tmp_path, monkeypatch):
    """Kill the second run mid-way: the rerun skips the first, resumes the second, and ends where an
    uninterrupted plan ends (bit for bit on the CPU)."""
    from attnlab.training.trainer import Trainer

    def config(where):
        return AblateConfig.quick_config(out=tmp_path / where, families=("lr",), steps=10, progress=False)

    reference = {r["name"]: r for r in run_ablate(config("reference"))["runs"]}

    original = Trainer.train_step

    def dying(self):
        if self.run_dir is not None and self.run_dir.name == "L2-H4-lr0.001" and self.step == 6:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        run_ablate(config("interrupted"))
    runs = tmp_path / "interrupted" / "runs"
    assert (runs / "L2-H4-lr0.01" / "result.json").is_file()
    assert not (runs / "L2-H4-lr0.001" / "result.json").is_file()
    assert json.loads((runs / "L2-H4-lr0.001" / "trainer_state.json").read_text())["step"] == 6
    assert not (runs / "L2-H4-lr0.0001").exists()
    first_result = (runs / "L2-H4-lr0.01" / "result.json").stat().st_mtime_ns

    monkeypatch.setattr(Trainer, "train_step", original)
    started = []
    real_train_run = runner.train_run

    def counting(spec, run_dir, **kw):
        started.append(spec.name)
        return real_train_run(spec, run_dir, **kw)

    monkeypatch.setattr("attnlab.experiments.plan.train_run", counting)
    resumed = {r["name"]: r for r in run_ablate(config("interrupted"))["runs"]}
    assert started == ["L2-H4-lr0.001", "L2-H4-lr0.0001"]  # the finished run was skipped
    assert (runs / "L2-H4-lr0.01" / "result.json").stat().st_mtime_ns == first_result
    assert resumed["L2-H4-lr0.001"]["training"]["resumed"] is True
    for name, r in reference.items():
        assert resumed[name]["training"]["val_loss"] == pytest.approx(r["training"]["val_loss"], abs=1e-6)
        assert resumed[name]["heldout_loss"] == pytest.approx(r["heldout_loss"], abs=1e-6)
    rows = [json.loads(line) for line in (runs / "L2-H4-lr0.001" / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows if "loss" in row]
    assert steps == list(range(1, 11))  # one row per step, none lost or doubled across the kill


def test_changed_plan_is_refused_then_fresh_retrains(tmp_path):
    config = AblateConfig.quick_config(out=tmp_path, families=("lr",), lrs=(1e-3,), steps=3, progress=False)
    run_ablate(config)
    with pytest.raises(AttnlabError, match="--fresh"):
        run_ablate(AblateConfig.quick_config(out=tmp_path, families=("lr",), lrs=(1e-3,), steps=4,
                                             progress=False))
    summary = run_ablate(AblateConfig.quick_config(out=tmp_path, families=("lr",), lrs=(1e-3,), steps=4,
                                                   progress=False, fresh=True))
    assert summary["runs"][0]["training"]["step"] == 4


def test_budget_calibrates_steps_and_stops_in_time(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "CALIBRATION_SECONDS", 0.3)
    config = CompareConfig.quick_config(out=tmp_path, models=("gpt",), steps=None, budget_min=0.03,
                                        progress=False)
    (result,) = run_compare(config)["lm"]
    recorded = json.loads((tmp_path / "runs" / "lm-gpt" / "spec.json").read_text())
    training = result["training"]
    assert training["steps"] == recorded["steps"] >= 10
    assert training["step"] <= training["steps"]
    # stops at the budget (1.8 s) or at the calibrated step count, whichever comes first
    assert training["elapsed"] < 1.8 + 1.0
    assert training["step"] == training["steps"] or training["elapsed"] >= 1.8


def test_mixed_length_task_has_every_k(tmp_path):
    from attnlab.data.tasks import load_task

    config = CompareConfig.quick_config(out=tmp_path, pairs_per_k=20)
    path = mixed_length_task(config)
    data = load_task(str(path))
    pairs = data.train + data.val + data.test
    counts = {k: sum(items_in(s) == k for s, _ in pairs) for k in (1, 2, 4, 8)}
    assert counts == {1: 20, 2: 20, 4: 20, 8: 20}
    assert all(items_in(s) == items_in(t) for s, t in pairs)  # target joins as many dates as the source
    assert mixed_length_task(config) == path and path.read_text() == path.read_text()  # stable on reruns


def test_by_length_groups_and_caps():
    pairs = [("a", "A"), ("a ; b", "A ; B"), ("c", "C"), ("a ; b ; c ; d", "x"), ("d", "D")]
    groups = by_length(pairs, (1, 2, 4, 8), per_k=2)
    assert groups == {1: [("a", "A"), ("c", "C")], 2: [("a ; b", "A ; B")], 4: [("a ; b ; c ; d", "x")],
                      8: []}


class Bigram(torch.nn.Module):
    """Logits depend on the current token only, so any windowing must give the plain bigram loss."""

    def __init__(self, vocab: int, context: int | None) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0)))
        self.config = type("C", (), {"context_length": context})()

    def forward(self, x, state=None, return_state=False):
        logits = self.table[x]
        return (logits, state) if return_state else logits


@pytest.mark.parametrize("context, n", [(8, 3), (8, 9), (8, 50), (7, 50), (2, 11), (None, 50)])
def test_heldout_loss_scores_every_token_once(context, n):
    ids = torch.randint(11, (n,), generator=torch.Generator().manual_seed(n))
    model = Bigram(11, context)
    expected = F.cross_entropy(model.table[ids[:-1]], ids[1:]).item()
    assert heldout_lm_loss(model, ids, chunk=6, batch=3) == pytest.approx(expected, rel=1e-6)


def test_heldout_loss_recurrent_chunks_carry_state():
    from attnlab.models.recurrent import LSTMLM, LSTMLMConfig

    torch.manual_seed(0)
    model = LSTMLM(LSTMLMConfig(vocab_size=13, n_embd=8, hidden_size=8, n_layer=1)).eval()
    ids = torch.randint(13, (40,))
    whole = F.cross_entropy(model(ids[None, :-1])[0], ids[1:]).item()
    assert heldout_lm_loss(model, ids, chunk=7) == pytest.approx(whole, rel=1e-5)


def test_gpt_windows_see_at_least_half_a_context():
    """A GPT scored in windows differs from one long forward only by the context it sees."""
    from attnlab.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=17, context_length=64, n_layer=1, n_head=2, n_embd=16)).eval()
    ids = torch.randint(17, (60,))
    full = F.cross_entropy(model(ids[None, :-1])[0], ids[1:]).item()
    assert heldout_lm_loss(model, ids) == pytest.approx(full, rel=1e-5)  # fits one window: identical


@pytest.mark.parametrize("argv, message", [
    (["compare", "--budget", "0"], "--budget"),
    (["compare", "--quick", "--models", "lstm,eliza2"], "unknown model 'eliza2'"),
    (["compare", "--quick", "--task", "copy"], "dates-"),
    (["ablate", "--quick", "--families", "width"], "unknown ablation family 'width'"),
    (["ablate", "--steps", "0"], "--steps"),
    (["ablate", "--quick", "--set", "lr=0.1"], "--set lr: not a GPT model setting"),
])
def test_bad_options_are_one_clear_error(argv, message, capsys, tmp_path):
    from attnlab.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_every_model_key_is_reachable():
    assert set(ALL_MODELS) == set(LM_MODELS) | set(TRANSLATION_MODELS)
    with pytest.raises(AttnlabError, match="no models"):
        CompareConfig(models=())
