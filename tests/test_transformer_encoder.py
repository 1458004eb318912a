"""The encoder-only (BERT-like) model, its masked-token objective, `attnlab fill`, and the CLI end to end."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.cli import main
from attnlab.data.tokenizers import PAD, UNK, make_tokenizer
from attnlab.errors import AttnlabError
from attnlab.inference.fill import MASK, encode_with_masks, fill_masks
from attnlab.models.encoder import PRESETS as ENCODER_PRESETS
from attnlab.models.encoder import EncoderConfig, EncoderLM
from attnlab.recipes.masked_lm import MaskedLMObjective, mask_tokens
from attnlab.training.trainer import TrainConfig, Trainer

TEXT = (
    "Friends, Romans, countrymen, lend me your ears; I come to bury Caesar, not to praise him. "
    "The evil that men do lives after them; the good is oft interred with their bones. "
) * 30


def word_tokenizer():
    return make_tokenizer("word", TEXT, specials=(PAD, UNK, MASK))


def test_mask_tokens_follows_bert_proportions():
    ids = torch.randint(3, 50, (64, 128), generator=torch.Generator().manual_seed(0))
    ids[:, :5] = 0  # protected padding
    inputs, targets = mask_tokens(ids, mask_id=2, vocab_size=50, mask_prob=0.15,
                                  generator=torch.Generator().manual_seed(1), protected=(0,))
    chosen = targets >= 0
    assert torch.equal(targets[chosen], ids[chosen])
    assert not chosen[:, :5].any()
    assert abs(chosen.float().mean().item() - 0.15 * 123 / 128) < 0.01
    masked = (inputs == 2) & chosen
    assert abs(masked.sum().item() / chosen.sum().item() - 0.8) < 0.03
    unchanged = (inputs == ids) & chosen
    assert 0.08 < unchanged.sum().item() / chosen.sum().item() < 0.14  # 10% kept + random hits
    assert torch.equal(inputs[~chosen], ids[~chosen])
    assert chosen.any(dim=1).all()


def test_masked_token_training_lowers_loss():
    tok = word_tokenizer()
    ids = torch.tensor(tok.encode(TEXT), dtype=torch.long)
    config = EncoderConfig(**{**ENCODER_PRESETS["tiny"], "vocab_size": tok.vocab_size,
                              "mask_id": tok._special_id(MASK)})
    torch.manual_seed(0)
    model = EncoderLM(config)
    objective = MaskedLMObjective(ids, ids, config, seed=0, protected=(tok.pad_id,))
    train = TrainConfig(steps=200, batch_size=32, lr=5e-3, warmup_steps=10, eval_every=10**6,
                        ckpt_every=10**6)
    trainer = Trainer(model, objective, train, run_dir=None, progress=False)
    before = trainer.evaluate()
    trainer.fit()
    after = trainer.evaluate()
    counts = torch.bincount(ids).float()
    p = counts[counts > 0] / counts.sum()
    unigram_entropy = float(-(p * p.log()).sum())  # the best loss without looking at the context
    assert before > unigram_entropy  # untrained: about log(vocab)
    assert after < unigram_entropy - 0.3  # it reads the words around the mask


def test_fill_masks_and_encode_with_masks():
    tok = word_tokenizer()
    ids, positions = encode_with_masks(tok, f"Friends, {MASK}, countrymen")
    assert [tok.id_to_token(i) for i in ids] == ["Friends", ",", MASK, ",", " countrymen"]
    assert positions == [2]
    config = EncoderConfig(**{**ENCODER_PRESETS["tiny"], "vocab_size": tok.vocab_size,
                              "mask_id": tok._special_id(MASK)})
    model = EncoderLM(config)
    guesses = fill_masks(model, tok, f"{MASK} me your {MASK}", top_k=3)
    assert len(guesses) == 2 and all(len(row) == 3 for row in guesses)
    for row in guesses:
        probs = [p for _, p in row]
        assert probs == sorted(probs, reverse=True)
        assert all(token not in (PAD, UNK, MASK) for token, _ in row)
    with pytest.raises(AttnlabError, match=r"no \[MASK\]"):
        fill_masks(model, tok, "Friends, Romans")
    with pytest.raises(AttnlabError, match="at most"):
        fill_masks(model, tok, "Friends " * 40 + MASK)


def test_bad_encoder_config():
    with pytest.raises(AttnlabError):
        EncoderConfig(vocab_size=10, mask_id=10)
    with pytest.raises(AttnlabError):
        EncoderConfig(vocab_size=10, mask_id=2, mask_prob=0.0)


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_cli_train_transformer_evaluate_resume(tmp_path, capsys):
    out = tmp_path / "tr"
    code = run_cli(["train", "transformer", "--task", "copy", "--n-pairs", "300", "--preset", "tiny",
                    "--steps", "6", "--batch-size", "16", "--set", "ckpt_every=3", "--set", "eval_every=3",
                    "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "exact match" in printed
    assert (out / "src_tokenizer.json").is_file() and (out / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "transformer"
    assert run_cli(["evaluate", str(out), "--limit", "5", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["n"] == 5 and 0.0 <= scores["exact_match"] <= 1.0
    resumed = ["train", "transformer", "--resume", str(out), "--steps", "9", "--quiet", "--no-sample"]
    assert run_cli(resumed) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 9


def test_cli_train_encoder_and_fill(tmp_path, capsys):
    out = tmp_path / "enc"
    code = run_cli(["train", "encoder", "--preset", "tiny", "--steps", "4", "--batch-size", "8",
                    "--out", str(out), "--quiet", "--no-sample"])
    assert code == 0
    capsys.readouterr()
    assert run_cli(["fill", str(out), f"Friends, {MASK}, countrymen", "--top", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "[MASK]:" and len(lines) == 5
    assert lines[-1].startswith("Friends, ") and lines[-1].endswith(", countrymen")
    assert run_cli(["fill", str(out), "no mask here"]) == 2
    assert "no [MASK]" in capsys.readouterr().err
