"""Walk-throughs of attention itself, computed live with :mod:`attnlab.scratch`.

Topics: ``self-attention`` (:class:`SelfAttention_v1`), ``causal-attention``
(:class:`CausalAttention`: mask, dropout) and ``multi-head`` (:class:`MultiHeadAttention`: split,
attend per head, merge, project), all of scaled dot-product attention

    Z = softmax(Q K^T / sqrt(d_k)) V,   Q = X W_q,  K = X W_k,  V = X W_v,

with the future masked to -inf before the softmax in the causal topics. Each builds a list of
:class:`Step` in the order the attention overview goes, and hands it to
:func:`attnlab.explain.render.emit`.

Every number comes from the scratch modules themselves: a module is built after
``torch.manual_seed(seed)`` (the overview's recipe), its parameters are used for the step-by-step
maths, and the module's own forward pass is run at the end to check the steps add up. With the
default text and seed the numbers are the overview's worked example.
"""

from __future__ import annotations

import math

import torch

from attnlab.explain.steps import (
    WEIGHTED_AVERAGE,
    Step,
    check_text,
    context_step,
    input_step,
    labels,
    projection_steps,
    scaling_step,
    scores_step,
    token_embeddings,
    walk_through,
    weight_steps,
    weights_step,
)
from attnlab.scratch import CausalAttention, MultiHeadAttention, MultiHeadAttentionWrapper, SelfAttention_v1

D_OUT = 4


def self_attention_steps(text: str, seed: int) -> list[Step]:
    """The attention overview's walk-through with :class:`SelfAttention_v1` (no mask, no dropout)."""
    tokens, x, origin = token_embeddings(text, seed)
    torch.manual_seed(seed)
    module = SelfAttention_v1(d_in=x.shape[1], d_out=D_OUT)
    with torch.no_grad():
        q, k, v = x @ module.W_query, x @ module.W_key, x @ module.W_value
        scores = q @ k.T
        d_k = k.shape[-1]
        weights = torch.softmax(scores / math.sqrt(d_k), dim=-1)
        context = weights @ v
        module_context = module(x)
    how = f"Made by SelfAttention_v1({x.shape[1]}, {D_OUT}) after torch.manual_seed({seed}), with torch.rand."
    steps = [input_step(tokens, x, origin)]
    steps += weight_steps(module.W_query, module.W_key, module.W_value, how)
    steps += projection_steps(tokens, q, k, v, batched=False)
    steps += [
        scores_step(tokens, scores, tuple(scores.shape)),
        scaling_step(scores, d_k),
        weights_step(tokens, weights, d_k, tuple(weights.shape)),
        context_step(
            tokens,
            context,
            tuple(context.shape),
            check_text(context, module_context, f"SelfAttention_v1({x.shape[1]}, {D_OUT})(X)"),
        ),
    ]
    return steps


CAUSAL_DROPOUT = 0.5


def causal_attention_steps(text: str, seed: int) -> list[Step]:
    """:class:`CausalAttention`: mask the future, softmax, dropout, context."""
    tokens, x, origin = token_embeddings(text, seed)
    num_tokens, d_in = x.shape
    batch = x.unsqueeze(0)
    torch.manual_seed(seed)
    module = CausalAttention(d_in, D_OUT, context_length=num_tokens, dropout=CAUSAL_DROPOUT)
    module.train()
    with torch.no_grad():
        q, k, v = module.W_query(batch), module.W_key(batch), module.W_value(batch)
        scores = q @ k.transpose(1, 2)
        future = module.mask.bool()[:num_tokens, :num_tokens]
        masked_scores = scores.masked_fill(future, -torch.inf)
        d_k = k.shape[-1]
        weights = torch.softmax(masked_scores / math.sqrt(d_k), dim=-1)
        # The long way, as the notes first do it: softmax everything, zero the future, renormalise.
        simple = torch.softmax(scores / math.sqrt(d_k), dim=-1) * (~future)
        simple = simple / simple.sum(dim=-1, keepdim=True)
        torch.manual_seed(seed)
        dropped = module.dropout(weights)
        context_train = dropped @ v
        torch.manual_seed(seed)
        module_train = module(batch)
        module.eval()
        context_eval = weights @ v
        module_eval = module(batch)

    call = f"CausalAttention({d_in}, {D_OUT}, context_length={num_tokens}, dropout={CAUSAL_DROPOUT})"
    how = f"Made by {call} after torch.manual_seed({seed}); nn.Linear stores W^T, shown here as used (X W)."
    batch_shape = tuple(batch.shape)
    tt = (1, num_tokens, num_tokens)
    visible = int((~future).sum())
    zeroed = int(((dropped[0] == 0) & ~future).sum())
    steps = [input_step(tokens, x, origin + " The module takes a batch, here of one sequence.", batch_shape)]
    steps += weight_steps(module.W_query.weight.T, module.W_key.weight.T, module.W_value.weight.T, how)
    steps += projection_steps(tokens, q, k, v, batched=True)
    steps += [
        scores_step(tokens, scores[0], tt),
        Step(
            "Causal mask: hide the future",
            "A token may only use itself and the tokens before it (that is what lets a decoder predict the "
            "next token without peeking). The buffer mask = triu(ones(T, T), diagonal=1) marks each "
            "future position with 1.",
            module.mask[:num_tokens, :num_tokens],
            tokens,
            tokens,
            decimals=0,
        ),
        Step(
            "Masked scores",
            "Scores at future positions (above the diagonal) are set to -inf before the softmax, "
            "so exp(-inf) = 0 gives them no weight at all.",
            masked_scores[0],
            tokens,
            tokens,
            shape=tt,
        ),
        weights_step(
            tokens,
            weights[0],
            d_k,
            tt,
            title="Masked attention weights softmax(masked scores / sqrt(d_k))",
            extra="Everything above the diagonal is exactly 0. The long way (softmax all scores, zero the "
            "future, divide each row by its new sum) gives the same weights: largest difference "
            f"{(simple - weights).abs().max().item():.1e}.",
        ),
        Step(
            f"Dropout on the attention weights (p = {CAUSAL_DROPOUT:g}, training only)",
            f"In training, nn.Dropout({CAUSAL_DROPOUT:g}) zeroes each weight with probability "
            f"{CAUSAL_DROPOUT:g} and multiplies the survivors by 1 / (1 - {CAUSAL_DROPOUT:g}) = "
            f"{1 / (1 - CAUSAL_DROPOUT):g}, so the expected total is unchanged. Here {zeroed} of the "
            f"{visible} visible weights were dropped (drawn after torch.manual_seed({seed})). "
            "GPT models use a much smaller rate (0.1 or less); at inference (model.eval()) dropout is off.",
            dropped[0],
            tokens,
            tokens,
            shape=tt,
        ),
        context_step(
            tokens,
            context_train[0],
            tuple(context_train.shape),
            check_text(context_train, module_train, f"{call}(X) in training mode, same seed"),
            title="Context vectors in training: (dropped-out weights) V",
            note="(after dropout a row's weights sum to 1 only on average; a row that lost every weight "
            "gives a zero vector)",
        ),
        context_step(
            tokens,
            context_eval[0],
            tuple(context_eval.shape),
            check_text(context_eval, module_eval, "the module in eval mode"),
            title="Context vectors at inference: weights V (no dropout)",
            note=WEIGHTED_AVERAGE + f"; the first token can only attend to itself, so its context vector is "
            f"just its value vector v_{tokens[0]}",
        ),
    ]
    return steps


MULTI_HEADS = 2


def multi_head_steps(text: str, seed: int) -> list[Step]:
    """:class:`MultiHeadAttention`: one projection, split into heads, attention per head, merge, out_proj."""
    tokens, x, origin = token_embeddings(text, seed)
    num_tokens, d_in = x.shape
    batch = x.unsqueeze(0)
    torch.manual_seed(seed)
    module = MultiHeadAttention(d_in, D_OUT, num_tokens, dropout=0.0, num_heads=MULTI_HEADS)
    torch.manual_seed(seed)
    wrapper = MultiHeadAttentionWrapper(d_in, D_OUT // MULTI_HEADS, num_tokens, 0.0, num_heads=MULTI_HEADS)
    module.eval()
    wrapper.eval()
    h, head_dim = module.num_heads, module.head_dim
    with torch.no_grad():
        q, k, v = module.W_query(batch), module.W_key(batch), module.W_value(batch)
        qh, kh, vh = module.split_heads(q), module.split_heads(k), module.split_heads(v)
        scores = qh @ kh.transpose(2, 3)
        future = module.mask.bool()[:num_tokens, :num_tokens]
        masked = scores.masked_fill(future, -torch.inf)
        weights = torch.softmax(masked / math.sqrt(head_dim), dim=-1)
        context = weights @ vh
        merged = context.transpose(1, 2).contiguous().view(1, num_tokens, D_OUT)
        output = module.out_proj(merged)
        module_output = module(batch)
        wrapper_output = wrapper(batch)

    heads = [f"head {i + 1}" for i in range(h)]
    call = f"MultiHeadAttention({d_in}, {D_OUT}, context_length={num_tokens}, dropout=0.0, num_heads={h})"
    per_head = (1, h, num_tokens, head_dim)
    per_head_tt = (1, h, num_tokens, num_tokens)
    split_note = (
        f"view(1, {num_tokens}, {h}, {head_dim}) cuts each row into {h} pieces of head_dim = "
        f"{D_OUT} / {h} = {head_dim}; transpose(1, 2) puts the head dimension first, so every head is "
        "a separate attention problem computed in the same batched matrix product."
    )
    steps = [
        input_step(
            tokens,
            x,
            origin + f" The module is {call}, built after torch.manual_seed({seed}).",
            tuple(batch.shape),
        ),
    ]
    steps += projection_steps(tokens, q, k, v, batched=True)
    steps += [
        Step(
            "Split the queries into heads", split_note, qh[0], tokens, labels("q", head_dim), per_head, heads
        ),
        Step(
            "Split the keys into heads",
            "Same view and transpose for the keys.",
            kh[0],
            tokens,
            labels("k", head_dim),
            per_head,
            heads,
        ),
        Step(
            "Split the values into heads",
            "Same view and transpose for the values.",
            vh[0],
            tokens,
            labels("v", head_dim),
            per_head,
            heads,
        ),
        Step(
            "Scores per head Q_h K_h^T",
            "Each head compares its own queries and keys: queries @ "
            "keys.transpose(2, 3) gives one T x T table per head.",
            scores[0],
            tokens,
            tokens,
            per_head_tt,
            heads,
        ),
        Step(
            "Causal mask per head",
            "The same mask hides the future in every head (-inf above the diagonal).",
            masked[0],
            tokens,
            tokens,
            per_head_tt,
            heads,
        ),
        Step(
            f"Attention weights per head softmax(scores / sqrt({head_dim}))",
            f"Scaled by sqrt(head_dim) = sqrt({head_dim}), the width of one head's keys. Each head learns "
            "its own pattern: compare the two tables.",
            weights[0],
            tokens,
            tokens,
            per_head_tt,
            heads,
        ),
        Step(
            "Context vectors per head weights_h V_h",
            f"Each head produces a {head_dim}-dimensional context vector per token.",
            context[0],
            tokens,
            labels("z", head_dim),
            per_head,
            heads,
        ),
        Step(
            "Merge the heads",
            f"transpose(1, 2) then view(1, {num_tokens}, {D_OUT}) puts the heads' context "
            "vectors side by side again: columns h1.* come from head 1, h2.* from head 2.",
            merged[0],
            tokens,
            [f"h{i + 1}.{j + 1}" for i in range(h) for j in range(head_dim)],
            tuple(merged.shape),
        ),
        Step(
            "Output projection out_proj",
            f"A last Linear({D_OUT}, {D_OUT}) with bias mixes the heads' "
            "results. " + check_text(output, module_output, f"{call}(X)"),
            output[0],
            tokens,
            labels("o", D_OUT),
            tuple(output.shape),
        ),
        Step(
            "The simple version: MultiHeadAttentionWrapper",
            f"MultiHeadAttentionWrapper({d_in}, {D_OUT // h}, {num_tokens}, 0.0, num_heads={h}) runs {h} "
            f"separate CausalAttention heads one after another and concatenates them: each head outputs "
            f"d_out = {D_OUT // h}, so the result is num_heads x d_out = {h * (D_OUT // h)} wide. It has no "
            "output projection and has weights of its own, so its numbers differ from the step before.",
            wrapper_output[0],
            tokens,
            [f"h{i + 1}.{j + 1}" for i in range(h) for j in range(D_OUT // h)],
            tuple(wrapper_output.shape),
        ),
    ]
    return steps


TOPICS = {
    topic.name: topic
    for topic in (
        walk_through(
            "self-attention",
            "the attention overview's walk-through: X -> Q, K, V -> softmax(QK^T / sqrt(d_k)) -> context",
            "Self-attention with trainable weights (SelfAttention_v1)",
            self_attention_steps,
        ),
        walk_through(
            "causal-attention",
            "hide the future: mask, masked weights, dropout, context (CausalAttention)",
            "Causal attention (CausalAttention)",
            causal_attention_steps,
        ),
        walk_through(
            "multi-head",
            "split Q, K, V into heads, attend per head, merge, out_proj (MultiHeadAttention)",
            "Multi-head attention (MultiHeadAttention)",
            multi_head_steps,
        ),
    )
}
