"""attnlab from Python: train() takes the command line's options, load_run() gives a run to use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import attnlab
from attnlab.inference.sampling import SamplingConfig, generate_text

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = dict(preset="gpt-nano", steps=6, batch_size=4, quiet=True, no_sample=True,
            set={"context_length": 16, "eval_every": 3, "eval_iters": 1})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    corpus = folder / "corpus.txt"
    corpus.write_text("friends romans countrymen lend me your ears\n" * 60, encoding="utf-8")
    return attnlab.train("gpt", data=str(corpus), out=str(folder / "run"), **TINY)


def test_train_returns_the_loaded_run(run):
    assert isinstance(run, attnlab.RunHandle)
    assert run.model.config.context_length == 16  # --set reached the model
    assert [r["step"] for r in run.metrics if "val_loss" in r] == [3, 6]
    assert run.run_json["train_config"]["steps"] == 6
    assert attnlab.load_run(run.path).run_json == run.run_json


def test_generate_matches_the_sampler_and_streams_the_same_text(run):
    expected = generate_text(run.model, run.tokenizer, "friends", SamplingConfig(max_new_tokens=30, seed=3))
    assert run.generate("friends", max_new_tokens=30, seed=3) == expected
    assert "".join(run.generate("friends", max_new_tokens=30, seed=3, stream=True)) == expected
    assert run.generate("friends", max_new_tokens=30, seed=4) != expected or len(set(expected)) <= 1


def test_attention_view_draws_and_shows_inline(run):
    view = run.attention("friends romans")
    assert [m.name for m in view.maps] == ["self"] and view.maps[0].n_layers == 3
    page = view._repr_html_()
    assert page.startswith("<iframe srcdoc=") and "<script" not in page  # the page is escaped inside srcdoc
    assert len(view.plot().axes) >= 9  # 3 layers x 3 heads (+ the colour bar)


def test_chat_keeps_the_conversation(run):
    conversation = run.chat(seed=0)
    first = conversation.reply("who is there")
    assert isinstance(first, str) and first
    assert conversation.history.startswith("who is there\n")


def test_unknown_option_is_one_clear_error():
    with pytest.raises(attnlab.AttnlabError, match="unknown option.*stepz"):
        attnlab.train("gpt", stepz=3)
    with pytest.raises(attnlab.AttnlabError, match="steps must be at least 1"):
        attnlab.train("gpt", steps=0)


def test_the_readme_python_section_runs_as_written(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README has no Python section with a python block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert (tmp_path / "runs" / "python-quick" / "model.safetensors").is_file()


def test_a_translation_run_translates_and_evaluates_from_python(tmp_path):
    run = attnlab.train("bahdanau", task="copy", n_pairs=200, preset="tiny", steps=4, batch_size=8,
                        out=str(tmp_path / "copy"), quiet=True, no_sample=True, set={"eval_every": 4, "eval_iters": 1})
    assert isinstance(run.translate("abc"), str) and len(run.translate(["ab", "cd"])) == 2
    metrics = run.evaluate(limit=10)
    assert {"exact_match", "cer", "bleu"} <= set(metrics) and 0.0 <= metrics["exact_match"] <= 1.0
    with pytest.raises(attnlab.AttnlabError, match="translate"):
        run.generate("abc")
