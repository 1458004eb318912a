"""attnlab.scratch: the attention overview's classes reproduce its worked examples (NOTES.md) and do
what their equations say."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnlab.scratch as scratch
from attnlab.errors import AttnlabError
from attnlab.scratch import (
    GELU,
    CausalAttention,
    FeedForward,
    GPTModel,
    LayerNorm,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    SelfAttention_v2,
    TransformerBlock,
)

# The attention overview's worked example, copied from NOTES.md ("The next day is bright", d_in = 8, d_out = 4).
SEED_INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89, 0.17, 0.23, 0.19, 0.38, 0.44],
        [0.55, 0.87, 0.66, 0.51, 0.49, 0.30, 0.20, 0.10],
        [0.57, 0.85, 0.64, 0.80, 0.10, 0.40, 0.21, 0.39],
        [0.22, 0.58, 0.33, 0.40, 0.40, 0.40, 0.10, 0.30],
        [0.77, 0.25, 0.10, 0.10, 0.90, 0.30, 0.30, 0.20],
    ]
)
SEED_CONTEXT = torch.tensor(
    [
        [1.3246, 1.5236, 1.8652, 2.3285],
        [1.3301, 1.5304, 1.8753, 2.3433],
        [1.3325, 1.5353, 1.8866, 2.3537],
        [1.3211, 1.5153, 1.8390, 2.3002],
        [1.3253, 1.5242, 1.8657, 2.3304],
    ]
)
SEED_FIRST_ROW_WEIGHTS = torch.tensor([0.1069, 0.3140, 0.3335, 0.0662, 0.1793])
SEED_LAYER_NORM_X = torch.tensor(
    [[-0.1115, 0.1204, -0.3696, -0.2404, -1.1969], [0.2093, -0.9724, -0.7550, 0.3239, -0.1085]]
)
SEED_LAYER_NORM_UNBIASED = torch.tensor(
    [[0.4945, 0.9564, -0.0200, 0.2375, -1.6685], [0.8128, -1.2314, -0.8554, 1.0111, 0.2630]]
)


def round4(t: torch.Tensor) -> torch.Tensor:
    return torch.round(t.detach(), decimals=4)


def tiny_cfg(**overrides) -> dict:
    cfg = {
        "vocab_size": 50,
        "context_length": 12,
        "emb_dim": 16,
        "n_heads": 4,
        "n_layers": 2,
        "drop_rate": 0.0,
        "qkv_bias": False,
    }
    cfg.update(overrides)
    return cfg


# ---- the attention overview's worked examples -----------------------------------------------------------------


def test_self_attention_v1_reproduces_the_seed_context_vectors():
    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(8, 4)
    assert torch.equal(round4(sa_v1(SEED_INPUTS)), SEED_CONTEXT)


def test_self_attention_v1_first_row_weights_are_the_seeds():
    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(8, 4)
    sa_v1(SEED_INPUTS)
    assert torch.equal(round4(sa_v1.last_attn_weights[0]), SEED_FIRST_ROW_WEIGHTS)
    # The same weights by hand: softmax(scores / 2), 2 = sqrt(d_k = 4).
    q, k = SEED_INPUTS @ sa_v1.W_query, SEED_INPUTS @ sa_v1.W_key
    by_hand = torch.softmax((q @ k.T) / 2, dim=-1)
    assert torch.allclose(by_hand, sa_v1.last_attn_weights)
    assert torch.allclose(sa_v1.last_attn_weights.sum(-1), torch.ones(5))


def test_v1_weights_are_torch_rand_in_the_order_query_key_value():
    torch.manual_seed(123)
    expected = [torch.rand(8, 4) for _ in range(3)]
    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(8, 4)
    assert [name for name, _ in sa_v1.named_parameters()] == ["W_query", "W_key", "W_value"]
    for param, want in zip([sa_v1.W_query, sa_v1.W_key, sa_v1.W_value], expected):
        assert torch.equal(param.detach(), want)


def test_layer_norm_example_from_the_notes():
    torch.manual_seed(123)
    x = torch.randn(2, 5)
    assert torch.equal(round4(x), SEED_LAYER_NORM_X)
    # NOTES: the normalisation it prints divides by the *unbiased* standard deviation.
    normalised = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=True))
    assert torch.equal(round4(normalised), SEED_LAYER_NORM_UNBIASED)


def test_layer_norm_module_uses_the_biased_variance_and_eps():
    torch.manual_seed(123)
    x = torch.randn(2, 5)
    out = LayerNorm(5)(x)
    mean = x.mean(-1, keepdim=True)
    biased = ((x - mean) ** 2).mean(-1, keepdim=True)  # divide by n
    assert torch.allclose(out, (x - mean) / torch.sqrt(biased + 1e-5), atol=1e-6)
    assert torch.allclose(out, F.layer_norm(x, (5,), eps=1e-5), atol=1e-6)
    # ... so it is *not* the notes' unbiased example: it is larger by sqrt(n / (n - 1)).
    assert not torch.allclose(round4(out), SEED_LAYER_NORM_UNBIASED)
    assert torch.allclose(out, SEED_LAYER_NORM_UNBIASED * math.sqrt(5 / 4), atol=2e-3)
    assert torch.allclose(out.var(-1, unbiased=False), torch.ones(2), atol=1e-3)


# ---- the classes, one idea each ------------------------------------------------------------------


def test_self_attention_v2_equals_v1_with_its_weights_transposed():
    torch.manual_seed(789)
    sa_v2 = SelfAttention_v2(8, 4)
    sa_v1 = SelfAttention_v1(8, 4)
    sa_v1.W_query = nn.Parameter(sa_v2.W_query.weight.T)
    sa_v1.W_key = nn.Parameter(sa_v2.W_key.weight.T)
    sa_v1.W_value = nn.Parameter(sa_v2.W_value.weight.T)
    assert torch.allclose(sa_v1(SEED_INPUTS), sa_v2(SEED_INPUTS), atol=1e-6)


def seeded_linears(seed: int, shapes: list[tuple[int, int, bool]]) -> list[nn.Linear]:
    torch.manual_seed(seed)
    return [nn.Linear(d_in, d_out, bias=bias) for d_in, d_out, bias in shapes]


def test_linear_projections_are_created_query_key_value_then_out_proj():
    want = seeded_linears(5, [(8, 4, True)] * 3)
    torch.manual_seed(5)
    sa_v2 = SelfAttention_v2(8, 4, qkv_bias=True)
    for got, expected in zip([sa_v2.W_query, sa_v2.W_key, sa_v2.W_value], want):
        assert torch.equal(got.weight, expected.weight) and torch.equal(got.bias, expected.bias)

    want = seeded_linears(5, [(8, 4, False)] * 3)
    torch.manual_seed(5)
    causal = CausalAttention(8, 4, context_length=6, dropout=0.0)
    for got, expected in zip([causal.W_query, causal.W_key, causal.W_value], want):
        assert torch.equal(got.weight, expected.weight) and got.bias is None

    want = seeded_linears(5, [(8, 6, False)] * 3 + [(6, 6, True)])
    torch.manual_seed(5)
    mha = MultiHeadAttention(8, 6, context_length=6, dropout=0.0, num_heads=3)
    assert [n for n, _ in mha.named_parameters()] == [
        "W_query.weight",
        "W_key.weight",
        "W_value.weight",
        "out_proj.weight",
        "out_proj.bias",
    ]
    for got, expected in zip([mha.W_query, mha.W_key, mha.W_value, mha.out_proj], want):
        assert torch.equal(got.weight, expected.weight)
    assert torch.equal(mha.out_proj.bias, want[3].bias)


def test_causal_attention_future_tokens_do_not_change_the_past():
    torch.manual_seed(0)
    attn = CausalAttention(8, 4, context_length=5, dropout=0.0)
    x = torch.rand(2, 5, 8)
    changed = x.clone()
    changed[:, 3:] = torch.rand(2, 2, 8)
    out, out_changed = attn(x), attn(changed)
    assert torch.allclose(out[:, :3], out_changed[:, :3])
    assert not torch.allclose(out[:, 3:], out_changed[:, 3:])
    weights = attn.last_attn_weights
    assert torch.all(torch.triu(weights, diagonal=1) == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 5))
    # The first token attends only to itself: its context vector is its own value vector.
    assert torch.allclose(out_changed[:, 0], attn.W_value(changed)[:, 0])


def test_causal_attention_mask_buffer_and_dropout():
    attn = CausalAttention(8, 4, context_length=6, dropout=0.5)
    assert torch.equal(attn.mask, torch.triu(torch.ones(6, 6), diagonal=1))
    assert "mask" in dict(attn.named_buffers())
    x = torch.rand(1, 6, 8)
    attn.eval()
    assert torch.allclose(attn(x), attn(x))
    attn.train()
    torch.manual_seed(1)
    trained = attn(x)
    torch.manual_seed(1)
    dropped = attn.dropout(attn.last_attn_weights)
    assert torch.allclose(trained, dropped @ attn.W_value(x))
    assert set(torch.unique(dropped / attn.last_attn_weights.clamp_min(1e-12)).round().tolist()) <= {0.0, 2.0}


def test_attention_longer_than_context_length_is_a_clear_error():
    with pytest.raises(AttnlabError, match="context_length=4"):
        CausalAttention(8, 4, context_length=4, dropout=0.0)(torch.rand(1, 5, 8))
    with pytest.raises(AttnlabError, match="context_length"):
        GPTModel(tiny_cfg(context_length=4))(torch.zeros(1, 5, dtype=torch.long))


def test_wrapper_concatenates_heads_of_width_d_out():
    torch.manual_seed(0)
    wrapper = MultiHeadAttentionWrapper(8, 3, context_length=5, dropout=0.0, num_heads=4)
    x = torch.rand(2, 5, 8)
    out = wrapper(x)
    assert out.shape == (2, 5, 4 * 3)
    assert isinstance(wrapper.heads, nn.ModuleList) and len(wrapper.heads) == 4
    assert torch.allclose(out, torch.cat([head(x) for head in wrapper.heads], dim=-1))
    assert wrapper.last_attn_weights.shape == (2, 4, 5, 5)


def test_multi_head_attention_equals_the_wrapper_with_shared_weights():
    """Splitting one projection into heads is the same as separate heads of width head_dim."""
    torch.manual_seed(0)
    num_heads, head_dim = 3, 2
    mha = MultiHeadAttention(8, num_heads * head_dim, context_length=7, dropout=0.0, num_heads=num_heads)
    wrapper = MultiHeadAttentionWrapper(8, head_dim, context_length=7, dropout=0.0, num_heads=num_heads)
    with torch.no_grad():
        for h, head in enumerate(wrapper.heads):
            rows = slice(h * head_dim, (h + 1) * head_dim)
            head.W_query.weight.copy_(mha.W_query.weight[rows])
            head.W_key.weight.copy_(mha.W_key.weight[rows])
            head.W_value.weight.copy_(mha.W_value.weight[rows])
        mha.out_proj.weight.copy_(torch.eye(num_heads * head_dim))
        mha.out_proj.bias.zero_()
    x = torch.rand(2, 7, 8)
    assert torch.allclose(mha(x), wrapper(x), atol=1e-6)
    assert torch.allclose(mha.last_attn_weights, wrapper.last_attn_weights, atol=1e-6)


@pytest.mark.parametrize("num_heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [True, False])
def test_multi_head_attention_matches_scaled_dot_product_attention(num_heads, causal):
    torch.manual_seed(num_heads)
    mha = MultiHeadAttention(8, 8, context_length=9, dropout=0.0, num_heads=num_heads, causal=causal)
    x = torch.randn(3, 7, 8)
    q, k, v = (mha.split_heads(proj(x)) for proj in (mha.W_query, mha.W_key, mha.W_value))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2).reshape(3, 7, 8)
    assert torch.allclose(mha(x), mha.out_proj(ref), atol=1e-5)


def test_multi_head_attention_key_padding_mask_hides_padded_keys():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 8, context_length=6, dropout=0.0, num_heads=2, causal=False)
    x = torch.randn(2, 6, 8)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1, 4:] = True
    out = mha(x, key_padding_mask=padding)
    assert torch.all(mha.last_attn_weights[1, :, :, 4:] == 0)
    # Whatever sits in the padded positions does not matter to the real tokens.
    x2 = x.clone()
    x2[1, 4:] = torch.randn(2, 8)
    assert torch.allclose(mha(x2, key_padding_mask=padding)[1, :4], out[1, :4], atol=1e-6)


def test_multi_head_attention_needs_d_out_divisible_by_heads():
    with pytest.raises(AttnlabError, match="divisible"):
        MultiHeadAttention(8, 6, context_length=4, dropout=0.0, num_heads=4)
    mha = MultiHeadAttention(8, 6, context_length=4, dropout=0.0, num_heads=3)
    assert mha.head_dim == 2
    assert mha(torch.rand(2, 4, 8)).shape == (2, 4, 6)
    assert mha.last_attn_weights.shape == (2, 3, 4, 4)


def test_gelu_is_the_tanh_approximation():
    x = torch.linspace(-4, 4, 41)
    assert torch.allclose(GELU()(x), F.gelu(x, approximate="tanh"), atol=1e-6)
    assert GELU()(torch.tensor(-1.0)).item() < 0  # unlike ReLU, small negatives pass through


def test_feed_forward_expands_four_times_and_back():
    ff = FeedForward(tiny_cfg(emb_dim=6))
    first, act, second = ff.layers
    assert (first.in_features, first.out_features) == (6, 24)
    assert isinstance(act, GELU)
    assert (second.in_features, second.out_features) == (24, 6)
    x = torch.randn(2, 3, 6)
    assert torch.allclose(ff(x), second(F.gelu(first(x), approximate="tanh")), atol=1e-6)


def test_transformer_block_is_pre_norm_with_shortcuts():
    torch.manual_seed(0)
    block = TransformerBlock(tiny_cfg())
    assert isinstance(block.att, MultiHeadAttention) and isinstance(block.ff, FeedForward)
    assert isinstance(block.norm1, LayerNorm) and isinstance(block.norm2, LayerNorm)
    assert isinstance(block.drop_shortcut, nn.Dropout)
    with torch.no_grad():
        block.norm1.scale.uniform_(0.5, 1.5)
        block.norm2.shift.uniform_(-0.5, 0.5)
    x = torch.randn(2, 5, 16)
    h = x + block.att(block.norm1(x))
    expected = h + block.ff(block.norm2(h))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_gpt_model_shapes_parts_and_parameter_order():
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = GPTModel(cfg)
    logits = model(torch.randint(0, cfg["vocab_size"], (3, 7)))
    assert logits.shape == (3, 7, cfg["vocab_size"])
    assert model.out_head.bias is None
    assert model.out_head.weight.data_ptr() != model.tok_emb.weight.data_ptr()  # not tied
    assert len(model.trf_blocks) == cfg["n_layers"]
    names = [name for name, _ in model.named_parameters()]
    assert names[:2] == ["tok_emb.weight", "pos_emb.weight"]
    assert names[2:6] == [f"trf_blocks.0.att.{p}.weight" for p in ("W_query", "W_key", "W_value", "out_proj")]
    assert names[-3:] == ["final_norm.scale", "final_norm.shift", "out_head.weight"]
    d, v, t, n = cfg["emb_dim"], cfg["vocab_size"], cfg["context_length"], cfg["n_layers"]
    per_block = 4 * d * d + d + (d * 4 * d + 4 * d + 4 * d * d + d) + 4 * d
    assert sum(p.numel() for p in model.parameters()) == v * d + t * d + n * per_block + 2 * d + d * v


def test_gpt_model_is_causal():
    torch.manual_seed(0)
    model = GPTModel(tiny_cfg()).eval()
    ids = torch.randint(0, 50, (1, 8))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 50
    assert torch.allclose(model(ids)[:, :-1], model(changed)[:, :-1], atol=1e-6)


def test_missing_config_key_is_a_clear_error():
    cfg = tiny_cfg()
    del cfg["n_heads"]
    with pytest.raises(AttnlabError, match="n_heads"):
        GPTModel(cfg)


def test_package_exports_the_seed_names():
    for name in [
        "SelfAttention_v1",
        "SelfAttention_v2",
        "CausalAttention",
        "MultiHeadAttentionWrapper",
        "MultiHeadAttention",
        "LayerNorm",
        "GELU",
        "FeedForward",
        "TransformerBlock",
        "GPTModel",
    ]:
        assert name in scratch.__all__ and hasattr(scratch, name)


# ---- the companion notes' other printed outputs ---------------------------------------------------
# NOTES.md lists only the 5 x 8 example. The companion notes also print the outputs below (their
# 6 x 3 "Your journey starts with one step" inputs, whose columns are the first three of the
# seed's); they pin the constructor signatures and parameter creation order of every class.

JOURNEY_INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],
        [0.55, 0.87, 0.66],
        [0.57, 0.85, 0.64],
        [0.22, 0.58, 0.33],
        [0.77, 0.25, 0.10],
        [0.05, 0.80, 0.55],
    ]
)


def test_companion_notes_outputs_for_every_attention_class():
    batch = torch.stack((JOURNEY_INPUTS, JOURNEY_INPUTS), dim=0)
    torch.manual_seed(123)
    assert torch.equal(round4(SelfAttention_v1(3, 2)(JOURNEY_INPUTS)[0]), torch.tensor([0.2996, 0.8053]))
    torch.manual_seed(789)
    assert torch.equal(round4(SelfAttention_v2(3, 2)(JOURNEY_INPUTS)[0]), torch.tensor([-0.0739, 0.0713]))
    torch.manual_seed(123)
    causal = CausalAttention(3, 2, context_length=6, dropout=0.0)(batch)
    assert causal.shape == (2, 6, 2)
    assert torch.equal(round4(causal[0, 0]), torch.tensor([-0.4519, 0.2216]))
    torch.manual_seed(123)
    wrapped = MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2)(batch)
    assert wrapped.shape == (2, 6, 4)
    assert torch.equal(round4(wrapped[0, 0]), torch.tensor([-0.4519, 0.2216, 0.4772, 0.1063]))
    torch.manual_seed(123)
    mha = MultiHeadAttention(3, 2, 6, 0.0, num_heads=2)(batch)
    assert torch.equal(round4(mha[0, 0]), torch.tensor([0.3190, 0.4858]))


@pytest.mark.slow
def test_companion_notes_gpt_model_output_and_size():
    """GPT-2 small (context 1024, untied head): 163,009,536 parameters and the notes' first logits
    (training mode, dropout 0.1, for the GPT-2 token ids of "Every effort moves you")."""
    cfg = dict(scratch.GPT_CONFIG_124M, context_length=1024)
    batch = torch.tensor([[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]])
    torch.manual_seed(123)
    model = GPTModel(cfg)
    assert sum(p.numel() for p in model.parameters()) == 163_009_536
    logits = model(batch)
    assert logits.shape == (2, 4, 50257)
    assert torch.equal(round4(logits[0, 0, :3]), torch.tensor([0.3613, 0.4222, -0.0711]))
    assert torch.equal(round4(logits[0, 0, -3:]), torch.tensor([0.3483, 0.4661, -0.2838]))
