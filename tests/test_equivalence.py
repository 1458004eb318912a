"""The overview's step-by-step classes and the fast layers compute the same thing (issue 2, part 4).

Same weights in -> same outputs and gradients out (fp32, atol 1e-5), for causal and non-causal
attention, several head counts, odd sequence lengths and a padding mask.
"""

import pytest
import torch

from attnlab import scratch
from attnlab.equivalence import copy_attention, copy_block, gpt_from_scratch, use_scratch_attention
from attnlab.layers import Block, MultiHeadAttention

ATOL = 1e-5


def grads(module, x):
    return [x.grad.clone()] + [p.grad.clone() for p in module.parameters() if p.grad is not None]


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("length", [1, 7, 13])
@pytest.mark.parametrize("padded", [False, True])
def test_attention_scratch_equals_fast(heads, causal, length, padded):
    torch.manual_seed(heads * 100 + length)
    d = 16
    slow = scratch.MultiHeadAttention(d, d, context_length=16, dropout=0.0, num_heads=heads, qkv_bias=True,
                                      causal=causal)
    fast = copy_attention(MultiHeadAttention(d, heads, bias=True, causal=causal), slow)
    x = torch.randn(3, length, d)
    real = torch.ones(3, length, dtype=torch.bool)
    if padded and length > 2:
        real[0, -2:] = False  # the last two keys of the first sequence are padding
        real[2, -1:] = False
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_slow = slow(x1, key_padding_mask=~real if padded else None)
    out_fast, _ = fast(x2, key_padding_mask=real if padded else None)
    torch.testing.assert_close(out_fast, out_slow, atol=ATOL, rtol=0)
    weights = torch.randn_like(out_slow)
    (out_slow * weights).sum().backward()
    (out_fast * weights).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=ATOL, rtol=0)
    # the fused QKV gradient is the stack of the three separate ones
    stacked = torch.cat([slow.W_query.weight.grad, slow.W_key.weight.grad, slow.W_value.weight.grad])
    torch.testing.assert_close(fast.qkv.weight.grad, stacked, atol=ATOL, rtol=0)
    torch.testing.assert_close(fast.proj.weight.grad, slow.out_proj.weight.grad, atol=ATOL, rtol=0)


def test_padding_positions_do_not_change_real_outputs():
    torch.manual_seed(0)
    fast = MultiHeadAttention(16, 4, causal=False)
    x = torch.randn(2, 9, 16)
    real = torch.ones(2, 9, dtype=torch.bool)
    real[:, 6:] = False
    y1, _ = fast(x, key_padding_mask=real)
    x_changed = x.clone()
    x_changed[:, 6:] = torch.randn(2, 3, 16) * 100
    y2, _ = fast(x_changed, key_padding_mask=real)
    torch.testing.assert_close(y1[:, :6], y2[:, :6], atol=ATOL, rtol=0)


def test_weights_path_equals_fused_path():
    torch.manual_seed(1)
    fast = MultiHeadAttention(24, 3, causal=True)
    x = torch.randn(2, 11, 24)
    plain, none = fast(x)
    explicit, weights = fast(x, need_weights=True)
    assert none is None and weights.shape == (2, 3, 11, 11)
    torch.testing.assert_close(plain, explicit, atol=ATOL, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 11))
    assert torch.all(weights.triu(1) == 0)  # no weight on the future


SEED_CFG = {"vocab_size": 50, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2,
            "drop_rate": 0.0, "qkv_bias": True}


def test_block_scratch_equals_fast():
    torch.manual_seed(2)
    slow = scratch.TransformerBlock(SEED_CFG)
    fast = copy_block(Block(32, 4, bias=True, causal=True), slow)
    x = torch.randn(2, 13, 32)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_slow = slow(x1)
    y_fast, _ = fast(x2)
    torch.testing.assert_close(y_fast, y_slow, atol=ATOL, rtol=0)
    y_slow.square().sum().backward()
    y_fast.square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=ATOL, rtol=0)
    torch.testing.assert_close(fast.mlp.fc.weight.grad, slow.ff.layers[0].weight.grad, atol=ATOL, rtol=0)


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_gpt_scratch_equals_fast(qkv_bias):
    torch.manual_seed(3)
    cfg = {**SEED_CFG, "qkv_bias": qkv_bias}
    slow = scratch.GPTModel(cfg)
    fast = gpt_from_scratch(slow, cfg)
    idx = torch.randint(0, 50, (2, 15))
    torch.testing.assert_close(fast(idx), slow(idx), atol=ATOL, rtol=0)
    slow(idx).logsumexp(-1).sum().backward()
    fast(idx).logsumexp(-1).sum().backward()
    torch.testing.assert_close(fast.tok_emb.weight.grad, slow.tok_emb.weight.grad, atol=ATOL, rtol=0)
    torch.testing.assert_close(fast.blocks[0].attn.proj.weight.grad, slow.trf_blocks[0].att.out_proj.weight.grad,
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_seq2seq_with_scratch_bahdanau_equals_fast(cell):
    """A whole RNN encoder-decoder: the overview's additive attention swapped in, same weights, same
    logits, gradients and beam-search translations (moved here from test_seq2seq.py)."""
    import copy

    from attnlab.data.tasks import encode_pairs
    from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, make_tokenizer
    from attnlab.equivalence import ScratchAdditiveAttention
    from attnlab.inference.search import decode
    from attnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig

    pairs = [("mercredi 9 mai 2018", "Wednesday, May 9, 2018"), ("lundi 1 mars", "Monday, March 1")]
    src = make_tokenizer("char", "\n".join(s for s, _ in pairs), specials=SEQ2SEQ_SPECIALS)
    tgt = make_tokenizer("char", "\n".join(t for _, t in pairs), specials=SEQ2SEQ_SPECIALS)
    torch.manual_seed(0)
    fast = Seq2Seq(Seq2SeqConfig(src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, cell=cell,
                                 n_embd=8, hidden_size=12, attn_dim=10)).eval()
    slow = use_scratch_attention(copy.deepcopy(fast))
    assert isinstance(slow.attention, ScratchAdditiveAttention)
    assert slow.state_dict().keys() == fast.state_dict().keys()
    b = encode_pairs(pairs, src, tgt)
    y_fast = fast(b["src"], b["src_mask"], b["tgt_in"])
    y_slow = slow(b["src"], b["src_mask"], b["tgt_in"])
    torch.testing.assert_close(y_fast, y_slow, rtol=1e-5, atol=1e-6)
    y_fast.logsumexp(-1).sum().backward()
    y_slow.logsumexp(-1).sum().backward()
    torch.testing.assert_close(fast.attention.U.weight.grad, slow.attention.U.weight.grad, rtol=1e-5, atol=ATOL)
    one, two = (decode(m, b["src"], b["src_mask"], beam=2) for m in (fast, slow))
    assert one.sequences() == two.sequences()
    torch.testing.assert_close(one.recorded, two.recorded, rtol=1e-5, atol=1e-6)
