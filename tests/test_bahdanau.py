"""Additive (Bahdanau) attention: the scratch version, its fast twin, and padding masks."""

import pytest
import torch

from attnlab.layers.additive import AdditiveAttention
from attnlab.scratch.bahdanau import BahdanauAttention


def twins(query_dim=5, key_dim=6, attn_dim=4, seed=0):
    torch.manual_seed(seed)
    scratch = BahdanauAttention(query_dim, key_dim, attn_dim)
    fast = AdditiveAttention(query_dim, key_dim, attn_dim)
    fast.load_state_dict(scratch.state_dict())  # same parameter names: W, U, v
    return scratch, fast


def padded_batch(lengths, key_dim=6, query_dim=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    B, S = len(lengths), max(lengths)
    h = torch.randn(B, S, key_dim, generator=g)
    s = torch.randn(B, query_dim, generator=g)
    mask = torch.arange(S).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return s, h, mask


def test_scores_follow_the_equation_term_by_term():
    scratch, _ = twins()
    s, h, _ = padded_batch([3])
    params = (scratch.W.weight, scratch.U.weight, scratch.U.bias, scratch.v.weight[0])
    W, U, b, v = (p.detach() for p in params)
    expected = [float(v @ torch.tanh(W @ s[0] + U @ h[0, j] + b)) for j in range(3)]
    assert scratch.scores(s, h)[0].tolist() == pytest.approx(expected, abs=1e-6)
    context, alpha = scratch(s, h)
    weights = torch.softmax(torch.tensor(expected), 0)
    assert alpha[0].tolist() == pytest.approx(weights.tolist(), abs=1e-6)
    assert context[0].tolist() == pytest.approx((weights @ h[0]).tolist(), abs=1e-6)


def test_fast_twin_equals_scratch_with_padding():
    scratch, fast = twins()
    s, h, mask = padded_batch([4, 2, 7, 1])
    c1, a1 = scratch(s, h, mask)
    c2, a2 = fast(s, h, fast.keys(h), fast.mask_bias(mask))
    torch.testing.assert_close(c1, c2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a1, a2, rtol=1e-5, atol=1e-6)
    assert torch.allclose(a1.sum(-1), torch.ones(4))


def test_fast_twin_equals_scratch_in_gradients():
    scratch, fast = twins()
    s, h, mask = padded_batch([5, 3])
    c1, _ = scratch(s, h, mask)
    c2, _ = fast(s, h, fast.keys(h), fast.mask_bias(mask))
    (c1 ** 2).sum().backward()
    (c2 ** 2).sum().backward()
    for name, p in scratch.named_parameters():
        torch.testing.assert_close(p.grad, dict(fast.named_parameters())[name].grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("which", ["scratch", "fast"])
def test_padding_positions_change_nothing(which):
    scratch, fast = twins()
    s, h, mask = padded_batch([3, 5, 2])
    h2 = h.clone()
    h2[~mask] = torch.randn(int((~mask).sum()), h.shape[-1]) * 100.0  # garbage in the padding

    def run(hh):
        if which == "scratch":
            return scratch(s, hh, mask)
        return fast(s, hh, fast.keys(hh), fast.mask_bias(mask))

    (c1, a1), (c2, a2) = run(h), run(h2)
    assert torch.equal(a1, a2)
    assert torch.equal(c1, c2)
    assert a1[~mask].abs().max().item() == 0.0


def test_without_a_mask_padding_would_leak():
    """The masking test above is not vacuous: unmasked, the padding does change the context."""
    scratch, _ = twins()
    s, h, mask = padded_batch([3, 5, 2])
    h2 = h.clone()
    h2[~mask] = 5.0
    assert not torch.allclose(scratch(s, h)[0], scratch(s, h2)[0])


def test_explain_topic_walks_through_one_decoder_step(tmp_path):
    import json

    from attnlab.explain import ExplainRequest, all_topics
    from attnlab.explain.bahdanau import bahdanau_steps

    steps = {step.title.split(" ")[0]: step for step in bahdanau_steps("mercredi 9 mai 2018", seed=7)}
    h, alpha, context = steps["Annotations"].values, steps["Weights"].values[:, 0], steps["Context"].values[0]
    assert h.shape == (4, 6) and float(alpha.sum()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(context, alpha @ h)
    padding = steps["Padding:"].values
    assert padding[-2:, 2].tolist() == [0.0, 0.0] and torch.allclose(padding[:4, 2], alpha)
    out = tmp_path / "bahdanau.json"
    request = ExplainRequest(text="lundi 1 mars", seed=1, format="json", out=str(out))
    assert all_topics()["bahdanau"].run(request) == 0
    assert len(json.loads(out.read_text())) == len(steps)
