"""The translation and masked-LM recipes, built directly (no command line): options, configs, objectives."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.recipes import get_recipe
from attnlab.recipes.translation import TransformerOptions, TranslationOptions, load_run_task


def defaults(options_class) -> dict:
    return {f.name: f.default for f in dataclasses.fields(options_class)}


def test_each_kind_shows_its_own_tokenizer_default_and_choices():
    rnn = {f.name: f for f in dataclasses.fields(TranslationOptions)}
    transformer = {f.name: f for f in dataclasses.fields(TransformerOptions)}
    assert list(rnn) == list(transformer) == ["task", "k", "n_pairs", "tokenizer", "vocab_size"]
    assert rnn["tokenizer"].default == "char" and rnn["tokenizer"].metadata["choices"] == ("char", "word")
    assert transformer["tokenizer"].default == "auto" and "bpe" in transformer["tokenizer"].metadata["choices"]
    assert defaults(TranslationOptions)["task"] == "dates-fr-en" and defaults(TranslationOptions)["n_pairs"] == 20000
    with pytest.raises(AttnlabError, match="--tokenizer"):
        get_recipe("bahdanau").options(tokenizer="bpe")
    assert get_recipe("transformer").options(tokenizer="bpe").tokenizer == "bpe"
    with pytest.raises(AttnlabError, match="unknown option"):
        get_recipe("seq2seq-gru").options(data="julius-caesar")


@pytest.mark.parametrize("kind, cell, attention", [("bahdanau", "gru", "bahdanau"), ("seq2seq-rnn", "rnn", "none"),
                                                   ("seq2seq-lstm", "lstm", "none"), ("seq2seq-gru", "gru", "none")])
def test_one_recipe_class_serves_every_rnn_kind(kind, cell, attention, tmp_path):
    recipe = get_recipe(kind)
    assert recipe.one_thread_on_cpu and recipe.default_preset == "small"
    assert recipe.training_for("tiny")["steps"] == 1500
    options = recipe.options(task="reverse", n_pairs=60)
    setup = recipe.build(options, tmp_path, False, {"n_embd": 8}, "tiny", seed=0)
    c = setup.model.config
    assert (c.cell, c.attention, c.n_embd, c.hidden_size) == (cell, attention, 8, 32)
    assert set(setup.files) == {"src_tokenizer.json", "tgt_tokenizer.json"}
    assert setup.run_info["task"] == "reverse" and setup.run_info["test_pairs"] == 6
    task = load_run_task({"args": dataclasses.asdict(options), "data_seed": setup.run_info["data_seed"]})
    assert task.test == load_run_task({"args": {"task": "reverse", "n_pairs": 60}}).test
    batch = setup.objective.batch("train", 0, 4)
    loss = setup.objective.loss(setup.model, batch)
    assert torch.isfinite(loss) and setup.objective.count_tokens(batch) > 0


def test_transformer_recipe_sizes_positions_and_smooths_labels(tmp_path):
    from attnlab.recipes.translation import SmoothedTranslationObjective

    recipe = get_recipe("transformer")
    assert not recipe.one_thread_on_cpu and recipe.training_for("small")["schedule"] == "inverse_sqrt"
    options = recipe.options(task="copy", n_pairs=60)
    setup = recipe.build(options, tmp_path, False, {}, "small", seed=0)
    assert setup.model.config.context_length == 256  # max(256, 2 x the longest sentence)
    assert isinstance(setup.objective, SmoothedTranslationObjective) and setup.objective.label_smoothing == 0.1
    # a legacy run.json's `--set max_length=64` (the old name) beats the recipe's own default
    old = recipe.build(options, tmp_path, False, {"max_length": 64, "d_model": 32}, "tiny", seed=0)
    assert (old.model.config.context_length, old.model.config.n_embd) == (64, 32)
    shared = recipe.build(options, tmp_path, False, {"share_embeddings": True}, "tiny", seed=0)
    assert shared.run_info["shared_vocabulary"] and shared.model.src_embed is shared.model.tgt_embed


def test_masked_lm_recipe_builds_and_samples(tmp_path):
    recipe = get_recipe("encoder")
    options = recipe.options(tokenizer="word", vocab_size=300)
    assert options.data == "julius-caesar" and options.val_fraction == 0.1
    setup = recipe.build(options, tmp_path, False, {}, "tiny", seed=0)
    assert setup.model.config.vocab_size == 300 and setup.model.config.n_embd == 32
    assert setup.run_info["tokenizer"] == "word" and setup.run_info["train_tokens"] > 1000
    assert setup.sample(setup.model).startswith("Friends, [MASK], countrymen\n  ")
    with pytest.raises(AttnlabError, match="--tokenizer"):
        recipe.options(tokenizer="bpe")
