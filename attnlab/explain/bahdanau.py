"""``attnlab explain bahdanau``: one decoder step of Bahdanau attention, number by number.

A tiny RNNsearch (Bahdanau, Cho & Bengio 2014) on the words of the text: the attention
overview's embeddings (or made-up ones), a bidirectional GRU encoder with 3 units per direction,
a GRU decoder with 4 units, an alignment model with 4 hidden units; all built from
:mod:`attnlab.scratch` after ``torch.manual_seed(seed)``. The walk-through computes the first
decoder step by hand:

    h_j      = [h_j^forward ; h_j^backward]                 annotations
    s_0      = tanh(W_s h_1^backward)                        decoder's first state
    e_1j     = v^T tanh(W s_0 + U h_j)                       scores
    alpha_1j = softmax_j(e_1j)                               weights
    c_1      = sum_j alpha_1j h_j                            context
    s_1      = GRU([E y_0 ; c_1], s_0)                       next decoder state

and checks the result against :class:`attnlab.scratch.bahdanau.BahdanauAttention` and its fast
twin :class:`attnlab.layers.additive.AdditiveAttention`, then shows what padding does.
"""

from __future__ import annotations

import torch

from attnlab.explain import DEFAULT_TEXT, ExplainRequest, Topic
from attnlab.explain.render import emit
from attnlab.explain.steps import Step, check_text, labels, token_embeddings, vector_text
from attnlab.layers.additive import AdditiveAttention
from attnlab.scratch.bahdanau import BahdanauAttention
from attnlab.scratch.recurrent import GRUCell, unroll

ENC_HIDDEN = 3  # per direction: annotations have 2 * 3 = 6 numbers
DEC_HIDDEN = 4
ATTN_DIM = 4
PADDING = 2


def bahdanau_steps(text: str, seed: int) -> list[Step]:
    tokens, x, origin = token_embeddings(text, seed)
    S, d_in = x.shape
    torch.manual_seed(seed)
    forward_cell, backward_cell = GRUCell(d_in, ENC_HIDDEN), GRUCell(d_in, ENC_HIDDEN)
    bridge = torch.nn.Linear(ENC_HIDDEN, DEC_HIDDEN)
    attention = BahdanauAttention(DEC_HIDDEN, 2 * ENC_HIDDEN, ATTN_DIM)
    decoder_cell = GRUCell(d_in + 2 * ENC_HIDDEN, DEC_HIDDEN)
    bos = torch.round(torch.rand(d_in), decimals=2)  # embedding of <bos>, the first decoder input

    with torch.no_grad():
        forward_states, _ = unroll(forward_cell, x.unsqueeze(0))
        backward_states, _ = unroll(backward_cell, x.unsqueeze(0), reverse=True)
        h = torch.cat([forward_states[0], backward_states[0]], dim=-1)  # (S, 6)
        s0 = torch.tanh(bridge(backward_states[0, 0]))  # (4,)
        W, U, b_U, v = attention.W.weight, attention.U.weight, attention.U.bias, attention.v.weight[0]
        Ws = W @ s0  # (attn,)
        Uh = h @ U.T + b_U  # (S, attn)
        hidden = torch.tanh(Ws + Uh)  # (S, attn)
        e = hidden @ v  # (S,)
        alpha = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()
        context = alpha @ h  # (6,)
        module_context, module_alpha = attention(s0.unsqueeze(0), h.unsqueeze(0))
        fast = AdditiveAttention(DEC_HIDDEN, 2 * ENC_HIDDEN, ATTN_DIM)
        fast.load_state_dict(attention.state_dict())
        fast_context, _ = fast(s0.unsqueeze(0), h.unsqueeze(0), fast.keys(h.unsqueeze(0)))
        decoder_input = torch.cat([bos, context])
        s1 = decoder_cell(decoder_input.unsqueeze(0), s0.unsqueeze(0))[0]
        # padding: two more positions of garbage, masked out
        padded = torch.cat([h, torch.full((PADDING, 2 * ENC_HIDDEN), 9.0)]).unsqueeze(0)
        mask = torch.tensor([[True] * S + [False] * PADDING])
        padded_scores = attention.scores(s0.unsqueeze(0), padded)[0]
        padded_context, padded_alpha = attention(s0.unsqueeze(0), padded, mask)

    annotation_cols = labels("fwd", ENC_HIDDEN) + labels("bwd", ENC_HIDDEN)
    attn_cols = labels("a", ATTN_DIM)
    best = tokens[int(alpha.argmax())]
    return [
        Step("Source embeddings x_j", f"The sentence to translate, one row per word. {origin}", x, tokens,
             labels("d", d_in), shape=(1, S, d_in), decimals=2),
        Step("Annotations h_j = [h_j^forward ; h_j^backward]",
             f"A GRU reads the words left to right (first {ENC_HIDDEN} columns) and another right to left "
             f"(last {ENC_HIDDEN}). Each row summarises the whole sentence with the focus on its own word: "
             "this is what the decoder will attend over, instead of one final vector.",
             h, tokens, annotation_cols, shape=(1, S, 2 * ENC_HIDDEN)),
        Step("Decoder's first state s_0 = tanh(W_s h_1^backward)",
             "Bahdanau et al. start the decoder from the backward encoder's state at the first word "
             f"(it has read the whole sentence): s_0 = {vector_text(s0)}.",
             s0.unsqueeze(0), ["s_0"], labels("s", DEC_HIDDEN), shape=(1, DEC_HIDDEN)),
        Step(f"Alignment model: W ({ATTN_DIM} x {DEC_HIDDEN}), U ({ATTN_DIM} x {2 * ENC_HIDDEN}) + bias, v",
             f"BahdanauAttention({DEC_HIDDEN}, {2 * ENC_HIDDEN}, {ATTN_DIM}): a one-hidden-layer network "
             "that scores how well the decoder state fits each annotation. Rows: its hidden units; columns: "
             f"W, then U, then U's bias. The output weights are v = {vector_text(v)}.",
             torch.cat([W, U, b_U.unsqueeze(1)], dim=1), attn_cols,
             labels("W", DEC_HIDDEN) + labels("U", 2 * ENC_HIDDEN) + ["bias"]),
        Step("W s_0: the query, once per decoder step",
             "What the decoder is looking for, in the alignment model's space.",
             Ws.unsqueeze(0), ["W s_0"], attn_cols, shape=(1, ATTN_DIM)),
        Step("U h_j + b: the keys, once per sentence",
             "They do not depend on the decoder state, so the fast twin (AdditiveAttention) computes them "
             "once after the encoder and reuses them at every decoder step; the scratch version recomputes "
             "them each step, as the equation reads.",
             Uh, tokens, attn_cols, shape=(1, S, ATTN_DIM)),
        Step("tanh(W s_0 + U h_j): query added to every key",
             "Additive attention: the query is added, not multiplied, to each key and passed through tanh.",
             hidden, tokens, attn_cols, shape=(1, S, ATTN_DIM)),
        Step("Scores e_1j = v^T tanh(W s_0 + U h_j)", "One number per source word: how well it fits now.",
             e.unsqueeze(1), tokens, ["e_1j"], shape=(1, S)),
        Step("Weights alpha_1j = softmax_j(e_1j)",
             f"They are positive and sum to {alpha.sum().item():.4f}. This row is one row of the alignment "
             f"picture; here the decoder looks most at '{best}' (untrained weights, so this is arbitrary: "
             "training makes it the word being translated).",
             alpha.unsqueeze(1), tokens, ["alpha_1j"], shape=(1, S)),
        Step("Context c_1 = sum_j alpha_1j h_j",
             "A weighted average of the annotations: a summary of the source made for this output word. "
             + check_text(context, module_context[0], "BahdanauAttention(...)(s_0, h)") + " "
             + check_text(context, fast_context[0], "AdditiveAttention with precomputed keys"),
             context.unsqueeze(0), ["c_1"], annotation_cols, shape=(1, 2 * ENC_HIDDEN)),
        Step("Next decoder state s_1 = GRU([E y_0 ; c_1], s_0)",
             f"The decoder's input is the previous output word's embedding (here <bos>, "
             f"{vector_text(bos)}) next to the context. s_1 predicts the first target word; the next step "
             "starts again from W s_1.",
             torch.stack([s0, s1]), ["s_0", "s_1"], labels("s", DEC_HIDDEN)),
        Step(f"Padding: {PADDING} more positions of garbage, masked",
             "In a batch, shorter sentences are padded. Their scores are set to -inf before the softmax, so "
             "their weights are exactly 0 and the context is unchanged "
             f"(largest difference {(padded_context[0] - context).abs().max().item():.1e}).",
             torch.stack([padded_scores, padded_scores.masked_fill(~mask[0], float("-inf")),
                          padded_alpha[0]], dim=1),
             tokens + [f"<pad{i + 1}>" for i in range(PADDING)], ["e (unmasked)", "e (masked)", "alpha"],
             shape=(1, S + PADDING)),
    ]


def run(request: ExplainRequest) -> int:
    text = request.text or DEFAULT_TEXT
    seed = request.seed_or_default
    with torch.random.fork_rng(devices=[]):
        steps = bahdanau_steps(text, seed)
    emit(f'Bahdanau attention, one decoder step: "{text}" (seed {seed})', steps, request.format, request.out)
    return 0


TOPICS = {
    "bahdanau": Topic(
        "bahdanau",
        "additive attention, one decoder step: annotations, W s + U h, v^T tanh, softmax, context, masking",
        run,
    ),
}

__all__ = ["TOPICS", "bahdanau_steps"]
