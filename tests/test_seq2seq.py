"""RNN encoder-decoders with and without Bahdanau attention: shapes, masks, decoding, learning."""

import random

import pytest
import torch

from attnlab.checkpoint import save_model
from attnlab.data.tasks import encode_pairs
from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, make_tokenizer
from attnlab.errors import AttnlabError
from attnlab.inference.search import decode
from attnlab.inference.translate import Translator
from attnlab.layers.loss import masked_cross_entropy
from attnlab.models.registry import load_model
from attnlab.models.seq2seq import PRESETS, Seq2Seq, Seq2SeqConfig
from attnlab.recipes.translation import TranslationObjective
from attnlab.viz.heatmaps import plot_alignment

PAIRS = [("mercredi 9 mai 2018", "Wednesday, May 9, 2018"), ("lundi 1 mars 1999", "Monday, March 1, 1999"),
         ("jeudi 22 juin 2001", "Thursday, June 22, 2001"), ("mardi 3 mai 2010", "Tuesday, May 3, 2010")]


@pytest.fixture(scope="module")
def toks():
    src = make_tokenizer("char", "\n".join(s for s, _ in PAIRS), specials=SEQ2SEQ_SPECIALS)
    tgt = make_tokenizer("char", "\n".join(t for _, t in PAIRS), specials=SEQ2SEQ_SPECIALS)
    return src, tgt


def tiny(toks, seed=0, **overrides):
    torch.manual_seed(seed)
    src, tgt = toks
    values = dict(src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, n_embd=8, hidden_size=12,
                  attn_dim=10)
    values.update(overrides)
    return Seq2Seq(Seq2SeqConfig(**values)).eval()


def batch(toks, pairs=PAIRS):
    return encode_pairs(pairs, *toks)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("attention", ["none", "bahdanau"])
def test_shapes_loss_and_decoding_for_every_cell(toks, cell, attention):
    model = tiny(toks, cell=cell, attention=attention, n_layer=2)
    b = batch(toks)
    logits, weights = model(b["src"], b["src_mask"], b["tgt_in"], need_weights=True)
    assert logits.shape == (4, b["tgt_in"].shape[1], toks[1].vocab_size)
    assert weights.shape == (4, b["tgt_in"].shape[1], b["src"].shape[1])
    loss = model.loss(b["src"], b["src_mask"], b["tgt_in"], b["tgt_out"], b["tgt_mask"])
    assert abs(loss.item() - torch.log(torch.tensor(float(toks[1].vocab_size)))) < 0.5  # near uniform at init
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "embed" not in n)
    result = decode(model, b["src"], b["src_mask"], beam=3, max_len=7)
    assert result.tokens.shape[0] == 4 and result.tokens.shape[1] <= 7
    if attention == "bahdanau":
        assert model.config.bidirectional
        assert result.recorded.shape == (4, result.tokens.shape[1], b["src"].shape[1])
        torch.testing.assert_close(result.recorded.sum(-1), torch.ones(result.recorded.shape[:2]))
    else:
        assert not model.config.bidirectional and result.recorded is None


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["none", "bahdanau"])
def test_padding_in_the_source_changes_nothing(toks, cell, attention):
    """A sentence's output is the same alone, beside longer ones, and with garbage in its padding."""
    model = tiny(toks, cell=cell, attention=attention)
    b = batch(toks)
    short = int(b["src_mask"].sum(1).argmin())
    alone = batch(toks, [PAIRS[short]])
    logits_batch = model(b["src"], b["src_mask"], b["tgt_in"])[short, : alone["tgt_in"].shape[1]]
    logits_alone = model(alone["src"], alone["src_mask"], alone["tgt_in"])[0]
    torch.testing.assert_close(logits_batch, logits_alone, rtol=1e-4, atol=1e-5)
    garbage = b["src"].clone()
    garbage[~b["src_mask"]] = 5
    torch.testing.assert_close(model(garbage, b["src_mask"], b["tgt_in"]),
                               model(b["src"], b["src_mask"], b["tgt_in"]))


def test_one_shot_decoder_equals_step_loop_without_attention(toks):
    model = tiny(toks, attention="none", cell="lstm", n_layer=2)
    b = batch(toks)
    fast = model(b["src"], b["src_mask"], b["tgt_in"])
    looped, _ = model(b["src"], b["src_mask"], b["tgt_in"], need_weights=True)
    torch.testing.assert_close(fast, looped, rtol=1e-5, atol=1e-6)


def test_forward_logits_match_the_search_step(toks):
    """Teacher-forced logits equal what step() gives when fed the same tokens one by one."""
    model = tiny(toks)
    b = batch(toks)
    logits = model(b["src"], b["src_mask"], b["tgt_in"])
    state = model.encode(b["src"], b["src_mask"])
    for t in range(3):
        log_probs, state = model.step(b["tgt_in"][:, t], state)
        torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], -1), rtol=1e-5, atol=1e-5)


def test_beam_one_equals_greedy_on_a_model(toks):
    model = tiny(toks, cell="lstm", seed=3)
    b = batch(toks)
    greedy = decode(model, b["src"], b["src_mask"], beam=1, max_len=12)
    beam = decode(model, b["src"], b["src_mask"], beam=1, max_len=12)
    from attnlab.inference.search import beam_search

    state = model.encode(b["src"], b["src_mask"])
    c = model.config
    beamed = beam_search(model.step, state, c.bos_id, c.eos_id, 12, beam=1, record="attn")
    assert greedy.sequences() == beam.sequences() == beamed.sequences()
    torch.testing.assert_close(greedy.recorded, beamed.recorded)


def test_teacher_forcing_ratio_below_one_feeds_own_predictions(toks):
    model = tiny(toks, teacher_forcing=0.0).train()
    b = batch(toks)
    own = model(b["src"], b["src_mask"], b["tgt_in"])
    forced = model(b["src"], b["src_mask"], b["tgt_in"], teacher_forcing=1.0)
    torch.testing.assert_close(own[:, 0], forced[:, 0])  # step 0 always reads <bos>
    assert not torch.allclose(own[:, 1:], forced[:, 1:])
    model.eval()  # evaluation is always teacher-forced
    torch.testing.assert_close(model(b["src"], b["src_mask"], b["tgt_in"]), forced)


def test_config_validation():
    with pytest.raises(AttnlabError, match="cell"):
        Seq2SeqConfig(cell="transformer")
    with pytest.raises(AttnlabError, match="attention"):
        Seq2SeqConfig(attention="luong")
    with pytest.raises(AttnlabError, match="hidden_size"):
        Seq2SeqConfig(hidden_size=0)
    with pytest.raises(AttnlabError, match="teacher_forcing"):
        Seq2SeqConfig(teacher_forcing=1.5)
    with pytest.raises(AttnlabError, match="pad/bos/eos"):
        Seq2SeqConfig(tgt_vocab_size=2)
    assert Seq2SeqConfig(attention="none").bidirectional is False
    assert Seq2SeqConfig().attn_dim == Seq2SeqConfig().hidden_size
    for preset in PRESETS.values():
        Seq2SeqConfig(**preset)


def test_save_load_round_trip(toks, tmp_path):
    model = tiny(toks, cell="lstm", n_layer=2)
    save_model(model, tmp_path)
    again = load_model(tmp_path)
    assert isinstance(again, Seq2Seq) and again.config == model.config
    b = batch(toks)
    torch.testing.assert_close(again(b["src"], b["src_mask"], b["tgt_in"]),
                               model(b["src"], b["src_mask"], b["tgt_in"]))


def test_masked_cross_entropy_ignores_padding():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])
    mask = targets != 0
    expected = torch.nn.functional.cross_entropy(logits[mask], targets[mask])
    torch.testing.assert_close(masked_cross_entropy(logits, targets, mask), expected)


def test_translator_and_alignment_picture(toks, tmp_path):
    model = tiny(toks)
    translator = Translator(model, *toks)
    out = translator.translate(["mercredi 9 mai 2018", "lundi 1 mars 1999"], beam=2, max_len=6)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    src_tokens, tgt_tokens, weights = translator.alignment("mardi 3 mai", max_len=6)
    assert src_tokens == list("mardi 3 mai")
    assert weights.shape == (len(tgt_tokens), len(src_tokens))
    path = plot_alignment(src_tokens, tgt_tokens, weights, tmp_path / "align.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(AttnlabError, match="expected"):
        plot_alignment(src_tokens, tgt_tokens, weights[:, :-1], tmp_path / "bad.png")
    with pytest.raises(AttnlabError, match="no attention"):
        Translator(tiny(toks, attention="none"), *toks).alignment("mardi")
    with pytest.raises(AttnlabError, match="empty"):
        translator.translate("")


def test_objective_batches_are_deterministic_and_trimmed(toks):
    objective = TranslationObjective({"train": PAIRS, "val": PAIRS[:2]}, *toks, seed=3)
    a, b = objective.batch("train", 7, 5), objective.batch("train", 7, 5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert bool(a["src_mask"][:, -1].any()) and bool(a["tgt_mask"][:, -1].any())  # no all-padding column
    assert objective.count_tokens(a) == int(a["tgt_mask"].sum())


def reverse_pairs(n, seed):
    rng = random.Random(seed)
    out = {}
    while len(out) < n:
        s = "".join(rng.choice("abcde") for _ in range(rng.randint(2, 5)))
        out[s] = s[::-1]
    return list(out.items())


def test_tiny_attention_model_learns_reverse(toks):
    from attnlab.training.trainer import TrainConfig, Trainer

    pairs = reverse_pairs(700, seed=0)
    train, held_out = pairs[:600], pairs[600:]
    src = make_tokenizer("char", "abcde", specials=SEQ2SEQ_SPECIALS)
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=src.vocab_size, tgt_vocab_size=src.vocab_size, n_embd=16,
                                  hidden_size=32, max_target_len=8))
    objective = TranslationObjective({"train": train, "val": held_out}, src, src, seed=0)
    config = TrainConfig(steps=140, batch_size=32, lr=1e-2, warmup_steps=10, eval_every=250, eval_iters=2,
                         weight_decay=0.0, seed=0)
    Trainer(model, objective, config, progress=False).fit()
    translator = Translator(model.eval(), src, src)
    hyps = translator.translate([s for s, _ in held_out])
    accuracy = sum(h == t for h, (_, t) in zip(hyps, held_out)) / len(held_out)
    print(f"reverse: exact match {accuracy:.1%} on {len(held_out)} held-out strings")
    assert accuracy >= 0.9, accuracy


def test_translation_metrics():
    from attnlab.evaluation import bleu, char_error_rate, edit_distance, exact_match, translation_metrics

    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    assert edit_distance("ab", "ab") == 0 and edit_distance("abc", "") == 3
    assert exact_match(["a", "b", "c", "d"], ["a", "x", "c", "y"]) == 0.5
    assert char_error_rate(["kitten", "abc"], ["sitting", "abc"]) == pytest.approx(3 / 10)
    assert char_error_rate(["abcdefgh"], ["ab"]) == 3.0  # insertions can push CER above 1
    refs = ["Wednesday, May 9, 2018", "Monday, March 1, 1999"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert bleu(["Tuesday, May 9, 2018", "Monday, March 1, 1999"], refs) < 100.0
    scores = translation_metrics(refs, refs)
    assert scores["exact_match"] == 1.0 and scores["cer"] == 0.0 and scores["n"] == 2
    with pytest.raises(AttnlabError, match="pair up"):
        exact_match(["a"], ["a", "b"])
    with pytest.raises(AttnlabError, match="empty"):
        char_error_rate(["a"], [""])
