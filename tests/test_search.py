"""Greedy decoding and beam search over a generic step function."""

import math

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.inference.search import beam_search, greedy_decode, repeat_rows, select, tree_map

BOS, EOS = 0, 1


def table_step(table):
    """A step function from a dict: prefix (tuple of tokens after BOS) -> next-token probabilities.

    The state carries the prefix as a (N, t) tensor, so beam reordering is exercised.
    """
    V = len(next(iter(table.values())))

    def step(tokens, state):
        prefix = torch.cat([state["prefix"], tokens.unsqueeze(1)], dim=1)
        rows = []
        for row in prefix.tolist():
            probs = table.get(tuple(row[1:]), [1.0 if v == EOS else 0.0 for v in range(V)])
            rows.append([math.log(p) if p > 0 else -math.inf for p in probs])
        return torch.tensor(rows), {"prefix": prefix}

    return step


def empty_prefix(n):
    return {"prefix": torch.empty(n, 0, dtype=torch.long)}


# V = 4: BOS, EOS, a=2, b=3. Greedy takes "a" (0.6) then is stuck with 0.4 at best: P = 0.24.
# Beam search finds "b b" with P = 0.4 * 0.9 * 1.0 = 0.36.
TRAP = {
    (): [0.0, 0.0, 0.6, 0.4],
    (2,): [0.0, 0.4, 0.3, 0.3],
    (3,): [0.0, 0.05, 0.05, 0.9],
    (3, 3): [0.0, 1.0, 0.0, 0.0],
}


def test_greedy_follows_the_most_likely_token():
    result = greedy_decode(table_step(TRAP), empty_prefix(1), BOS, EOS, max_len=10, batch_size=1)
    assert result.sequences() == [[2]]
    assert result.lengths.tolist() == [2]
    assert result.scores[0].item() == pytest.approx(math.log(0.6 * 0.4))


def test_beam_search_escapes_the_greedy_trap():
    result = beam_search(table_step(TRAP), empty_prefix(1), BOS, EOS, max_len=10, beam=2, length_penalty=0.0)
    assert result.sequences() == [[3, 3]]
    assert result.scores[0].item() == pytest.approx(math.log(0.4 * 0.9 * 1.0))


def test_length_penalty_changes_the_winner():
    # "a <eos>": P = 0.5 * 0.5 = 0.25 (2 tokens); "b b b <eos>": 0.5 * 0.8 * 0.8 * 0.7 = 0.224 (4 tokens)
    table = {(): [0, 0, 0.5, 0.5], (2,): [0, 0.5, 0.25, 0.25], (3,): [0, 0.2, 0, 0.8],
             (3, 3): [0, 0.2, 0, 0.8], (3, 3, 3): [0, 0.7, 0.3, 0]}
    plain = beam_search(table_step(table), empty_prefix(1), BOS, EOS, 10, beam=3, length_penalty=0.0)
    normalised = beam_search(table_step(table), empty_prefix(1), BOS, EOS, 10, beam=3, length_penalty=1.0)
    assert plain.sequences() == [[2]]
    assert normalised.sequences() == [[3, 3, 3]]
    assert normalised.scores[0].item() == pytest.approx(math.log(0.224) / 4)


def random_lm(vocab=7, dim=8, seed=0):
    """A tiny random recurrent 'model' with a real state, for batched comparisons."""
    g = torch.Generator().manual_seed(seed)
    E, W, O = (torch.randn(vocab, dim, generator=g), torch.randn(dim, dim, generator=g) * 0.5,
               torch.randn(dim, vocab, generator=g) * 2)

    def step(tokens, state):
        h = torch.tanh(E[tokens] + state["h"] @ W)
        logits = h @ O
        logits[:, EOS] += 0.4 * state["t"].squeeze(1)  # ending gets likelier with time
        return torch.log_softmax(logits, -1), {"h": h, "t": state["t"] + 1}

    def init(n, seed=1):
        gg = torch.Generator().manual_seed(seed)
        return {"h": torch.randn(n, dim, generator=gg), "t": torch.zeros(n, 1)}

    return step, init


def test_beam_width_one_equals_greedy():
    step, init = random_lm()
    greedy = greedy_decode(step, init(6), BOS, EOS, max_len=15, batch_size=6)
    beam = beam_search(step, init(6), BOS, EOS, max_len=15, beam=1)
    assert greedy.sequences() == beam.sequences()
    assert torch.equal(greedy.lengths, beam.lengths)
    torch.testing.assert_close(greedy.scores, beam.scores * beam.lengths.float())


def test_batched_beam_search_equals_one_sentence_at_a_time():
    step, init = random_lm(seed=3)
    state = init(5)
    batched = beam_search(step, state, BOS, EOS, max_len=12, beam=4).sequences()
    alone = [beam_search(step, select(state, torch.tensor([i])), BOS, EOS, max_len=12, beam=4).sequences()[0]
             for i in range(5)]
    assert batched == alone


def test_beam_never_scores_below_greedy():
    step, init = random_lm(seed=5)
    greedy = greedy_decode(step, init(8), BOS, EOS, max_len=12, batch_size=8)
    beam = beam_search(step, init(8), BOS, EOS, max_len=12, beam=5, length_penalty=0.0)
    assert bool((beam.scores >= greedy.scores - 1e-5).all())


def test_greedy_pads_with_eos_after_the_end_and_records_state():
    step, init = random_lm(seed=2)
    result = greedy_decode(step, init(4), BOS, EOS, max_len=30, batch_size=4, record="t")
    for row, length in zip(result.tokens.tolist(), result.lengths.tolist()):
        assert row[length - 1] == EOS and all(t == EOS for t in row[length:])
        assert EOS not in row[: length - 1]
    assert result.recorded.shape == (4, result.tokens.shape[1], 1)
    assert result.recorded[0, :, 0].tolist() == [float(i + 1) for i in range(result.tokens.shape[1])]


def test_max_len_cuts_decoding():
    never_ends = table_step({(): [0, 0, 1.0, 0], (2,): [0, 0, 1.0, 0], (2, 2): [0, 0, 1.0, 0]})
    result = beam_search(never_ends, empty_prefix(1), BOS, EOS, max_len=3, beam=2)
    assert result.sequences() == [[2, 2, 2]]


def test_tree_helpers_and_bad_arguments():
    tree = {"a": torch.arange(3), "b": [torch.arange(6).view(3, 2), (torch.ones(3),)], "n": 5}
    again = repeat_rows(tree, 2)
    assert again["a"].tolist() == [0, 0, 1, 1, 2, 2] and again["n"] == 5
    picked = select(tree, torch.tensor([2, 0]))
    assert picked["b"][0].tolist() == [[4, 5], [0, 1]]
    assert tree_map(lambda t: t * 0, tree)["b"][1][0].tolist() == [0, 0, 0]
    with pytest.raises(AttnlabError, match="beam width"):
        beam_search(table_step(TRAP), empty_prefix(1), BOS, EOS, 5, beam=0)
    with pytest.raises(AttnlabError, match="max_len"):
        greedy_decode(table_step(TRAP), empty_prefix(1), BOS, EOS, 0, batch_size=1)
    with pytest.raises(AttnlabError, match="record"):
        greedy_decode(table_step(TRAP), empty_prefix(1), BOS, EOS, 3, batch_size=1, record="nope")


@pytest.mark.parametrize("beam", [1, 3])
def test_a_decoder_never_writes_bos_or_pad(beam):
    from attnlab.inference.search import decode
    from attnlab.models.transformer import Transformer, TransformerConfig

    torch.manual_seed(0)
    config = TransformerConfig(src_vocab_size=8, tgt_vocab_size=8, n_embd=16, n_head=2, n_encoder_layers=1,
                               n_decoder_layers=1, d_ff=32, tie_output=False, max_target_len=6)
    model = Transformer(config)
    with torch.no_grad():  # make <bos> and <pad> by far the most likely next tokens
        model.out.weight.zero_()
        model.out.weight[config.bos_id].fill_(5.0)
        model.out.weight[config.pad_id].fill_(4.0)
    src = torch.tensor([[3, 4, 5]])
    result = decode(model, src, torch.ones_like(src, dtype=torch.bool), beam=beam)
    tokens = result.tokens[0].tolist()
    assert config.bos_id not in tokens and config.pad_id not in tokens
