"""The 2017 Transformer: shapes, masks, caching, parameter count, learning copy / reverse."""

from __future__ import annotations

import random
import string

import pytest
import torch

from attnlab.checkpoint import save_model
from attnlab.data.tasks import TranslationData
from attnlab.errors import AttnlabError
from attnlab.evaluation import exact_match
from attnlab.inference.search import decode
from attnlab.inference.translate import Translator
from attnlab.layers.loss import masked_cross_entropy
from attnlab.models.registry import load_model
from attnlab.models.transformer import PRESETS, Transformer, TransformerConfig, preset_config
from attnlab.recipes.translation import SmoothedTranslationObjective, task_tokenizers
from attnlab.training.trainer import TrainConfig, Trainer
from attnlab.viz.extract import transformer_attention


def tiny(**overrides) -> Transformer:
    torch.manual_seed(0)
    values = dict(src_vocab_size=23, tgt_vocab_size=19, context_length=64, dropout=0.0)
    return Transformer(preset_config("tiny", **{**values, **overrides}))


def random_batch(model: Transformer, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    src = torch.randint(4, model.config.src_vocab_size, (len(lengths), width), generator=g)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return src.masked_fill(~mask, model.config.pad_id), mask


# ------------------------------------------------------------------------------------ configuration


def expected_parameters(c: TransformerConfig) -> int:
    """Counted from the paper's description, independently of the module tree."""
    d, f = c.n_embd, c.d_ff
    attention = 4 * d * d + 4 * d  # W_Q, W_K, W_V, W_O with biases
    ffn = d * f + f + f * d + d
    norm = 2 * d
    encoder_layer = attention + ffn + 2 * norm
    decoder_layer = 2 * attention + ffn + 3 * norm
    embeddings = c.src_vocab_size * d  # one matrix: source, target and output projection
    return c.n_encoder_layers * encoder_layer + c.n_decoder_layers * decoder_layer + embeddings


def test_base_preset_matches_the_paper_parameter_count():
    config = preset_config("base", src_vocab_size=37000, tgt_vocab_size=37000, share_embeddings=True)
    assert (config.n_embd, config.n_head, config.n_encoder_layers, config.d_ff) == (512, 8, 6, 2048)
    model = Transformer(config)
    count = model.parameter_count()
    assert count == expected_parameters(config)
    assert abs(count - 65e6) / 65e6 < 0.05  # the paper's Table 3: 65M
    assert model.src_embed.weight is model.tgt_embed.weight is model.out.weight


def test_separate_vocabularies_have_separate_embeddings_and_tied_output():
    model = tiny()
    assert model.src_embed.weight is not model.tgt_embed.weight
    assert model.out.weight is model.tgt_embed.weight
    untied = tiny(tie_output=False)
    assert untied.parameter_count() == model.parameter_count() + 19 * 64


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_embd=30, n_head=4),
        dict(share_embeddings=True),  # 23 != 19
        dict(pos="rope"),
        dict(norm_position="middle"),
        dict(label_smoothing=1.5),
        dict(n_encoder_layers=0),
        dict(bos_id=0),
    ],
)
def test_bad_config_raises_a_clear_error(bad):
    with pytest.raises(AttnlabError):
        TransformerConfig(**{"src_vocab_size": 23, "tgt_vocab_size": 19, **bad})


def test_too_long_input_is_an_error_not_a_crash():
    model = tiny(context_length=8)
    src, mask = random_batch(model, [9])
    with pytest.raises(AttnlabError, match="context_length"):
        model(src, mask, src[:, :3])


def test_empty_source_is_an_error():
    model = tiny()
    src, mask = random_batch(model, [3, 2])
    mask[1] = False
    with pytest.raises(AttnlabError, match="empty"):
        model(src, mask, src[:, :2])


# ------------------------------------------------------------------------------------ padding


@pytest.mark.parametrize("variant", [{}, {"norm_position": "pre"}, {"pos": "learned"}])
def test_padding_changes_nothing(variant):
    model = tiny(**variant).eval()
    src, mask = random_batch(model, [7, 3, 5])
    tgt = torch.randint(4, 19, (3, 6), generator=torch.Generator().manual_seed(1))
    batched = model(src, mask, tgt)
    for i, length in enumerate([7, 3, 5]):
        alone = model(src[i : i + 1, :length], mask[i : i + 1, :length], tgt[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=1e-5)
    # extra padding columns on the target side leave the real positions alone
    longer = torch.cat([tgt, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(src, mask, longer)[:, :6], batched, atol=1e-5, rtol=1e-5)


def test_decoder_is_causal():
    model = tiny().eval()
    src, mask = random_batch(model, [5])
    tgt = torch.randint(4, 19, (1, 6))
    changed = tgt.clone()
    changed[0, 4:] = 3
    torch.testing.assert_close(model(src, mask, tgt)[:, :4], model(src, mask, changed)[:, :4])


# ------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("variant", [{}, {"norm_position": "pre", "pos": "learned"}])
@pytest.mark.parametrize("beam", [1, 3])
def test_cached_decoding_equals_uncached(variant, beam):
    model = tiny(**variant)
    # make the untrained model less uniform so that the comparison means something
    with torch.no_grad():
        model.out.weight.mul_(3.0)
    src, mask = random_batch(model, [6, 2, 4, 5])
    cached = decode(model, src, mask, beam=beam, max_len=20)
    uncached = decode(model, src, mask, beam=beam, max_len=20, use_cache=False)
    assert torch.equal(cached.tokens, uncached.tokens)
    assert torch.equal(cached.lengths, uncached.lengths)
    torch.testing.assert_close(cached.scores, uncached.scores, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cached.recorded, uncached.recorded, atol=1e-5, rtol=1e-5)
    assert cached.tokens.shape[1] > 8  # the self-attention cache grew several times


def test_greedy_scores_match_teacher_forcing():
    model = tiny().eval()
    src, mask = random_batch(model, [5, 3])
    result = decode(model, src, mask, max_len=7)
    tgt_in = torch.cat([torch.full((2, 1), model.config.bos_id), result.tokens[:, :-1]], dim=1)
    log_probs = torch.log_softmax(model(src, mask, tgt_in), dim=-1)
    picked = log_probs.gather(-1, result.tokens.unsqueeze(-1)).squeeze(-1)
    steps = torch.arange(result.tokens.shape[1]).unsqueeze(0) < result.lengths.unsqueeze(1)
    torch.testing.assert_close((picked * steps).sum(1), result.scores, atol=1e-4, rtol=1e-4)


def test_attention_maps_shapes_and_padding():
    model = tiny(n_encoder_layers=2, n_decoder_layers=3)
    src, mask = random_batch(model, [6, 4])
    tgt_in = torch.randint(4, 19, (2, 5))
    maps = model.attention_maps(src, mask, tgt_in)
    assert [m.shape for m in maps["encoder"]] == [(2, 4, 6, 6)] * 2
    assert [m.shape for m in maps["decoder"]] == [(2, 4, 5, 5)] * 3
    assert [m.shape for m in maps["cross"]] == [(2, 4, 5, 6)] * 3
    for group in maps.values():
        for m in group:
            torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]))
    assert float(maps["cross"][0][1, :, :, 4:].abs().max()) == 0.0  # padding gets no attention
    assert float(maps["encoder"][1][1, :, :, 4:].abs().max()) == 0.0
    assert float(torch.triu(maps["decoder"][0][0, 0], diagonal=1).abs().max()) == 0.0  # causal


def test_save_and_load_round_trip(tmp_path):
    model = tiny(share_embeddings=True, tgt_vocab_size=23).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, Transformer) and loaded.config == model.config
    assert loaded.out.weight is loaded.src_embed.weight
    src, mask = random_batch(model, [5, 3])
    torch.testing.assert_close(loaded(src, mask, src[:, :4]), model(src, mask, src[:, :4]))


def test_label_smoothing_loss():
    logits = torch.randn(2, 3, 5)
    targets = torch.randint(5, (2, 3))
    mask = torch.tensor([[True, True, False], [True, False, False]])
    plain = masked_cross_entropy(logits, targets, mask)
    log_p = torch.log_softmax(logits, -1)
    nll = -log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(plain, nll[mask].mean())
    eps = 0.1
    smoothed = masked_cross_entropy(logits, targets, mask, eps)
    expected = ((1 - eps) * nll - eps * log_p.mean(-1))[mask].mean()
    torch.testing.assert_close(smoothed, expected)


# ------------------------------------------------------------------------------------ learning


def symbol_task(reverse: bool, n: int = 1200, seed: int = 0) -> TranslationData:
    """Short strings over a few letters: the copy / reverse tasks at a size a test can learn in seconds."""
    rng = random.Random(seed)
    pairs = {}
    while len(pairs) < n:
        s = "".join(rng.choice(string.ascii_lowercase[:8]) for _ in range(rng.randint(3, 7)))
        pairs[s] = s[::-1] if reverse else s
    items = list(pairs.items())
    return TranslationData("reverse" if reverse else "copy", items[:1000], items[1000:1100], items[1100:])


@pytest.mark.parametrize("reverse", [False, True])
def test_tiny_model_learns_copy_and_reverse(reverse):
    data = symbol_task(reverse)
    src_tok, tgt_tok = task_tokenizers(data, "char", shared=True)
    torch.manual_seed(0)
    config = preset_config("tiny", src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size,
                           share_embeddings=True, context_length=32, max_target_len=12)
    model = Transformer(config)
    objective = SmoothedTranslationObjective({"train": data.train, "val": data.val}, src_tok, tgt_tok, seed=0)
    # a decaying rate: at a constant 3e-3 the result swung from 0.76 to 0.99 with the seed; with this
    # schedule seeds 0-3 all reached 0.98-1.0 on reverse
    train = TrainConfig(steps=300, batch_size=64, lr=2e-3, schedule="cosine", warmup_steps=30,
                        weight_decay=0.0, beta2=0.98, eval_every=10**6, ckpt_every=10**6)
    Trainer(model, objective, train, run_dir=None, progress=False).fit()
    translator = Translator(model.eval(), src_tok, tgt_tok)
    hyps = translator.translate([s for s, _ in data.test])
    assert exact_match(hyps, [t for _, t in data.test]) >= 0.9
    attention = transformer_attention(translator, data.test[0][0])
    assert attention.notes[0] == f"greedy translation: {translator.translate(data.test[0][0])}"
    cross = attention.select(part="cross").maps[0]
    assert cross.weights.shape == (config.n_decoder_layers, 4, len(cross.queries), len(cross.keys))
    assert len(cross.keys) == len(data.test[0][0]) and cross.queries[0] == "<bos>"


def test_presets_exist():
    assert {"tiny", "small", "base"} <= set(PRESETS)
