"""Walk-throughs of the attention family, computed live with :mod:`attnlab.scratch`.

Topics: ``self-attention``, ``causal-attention``, ``multi-head``, ``layer-norm``,
``feed-forward``. Each builds a list of :class:`Step` (a title, an explanation, the shape of the
tensor inside the module and its values), in the order the seed's notes go, and hands it to
:func:`emit`, which prints rich tables, markdown or JSON, or writes them to ``--out``.

Every number comes from the scratch modules themselves: a module is built after
``torch.manual_seed(seed)`` (the notes' recipe), its parameters are used for the step-by-step
maths, and the module's own forward pass is run at the end to check the steps add up.

The inputs: for the default text the seed's own 5 x 8 embedding matrix, so that seed 123 prints
the seed's numbers; for any other ``--text``, one token per word with made-up embeddings
``torch.rand(T, 8)`` rounded to two decimals like the seed's, from a generator seeded with
``--seed + EMBEDDING_SEED_OFFSET`` (so they are not the same random numbers as the weights).

:class:`Step`, :func:`emit` and :func:`token_embeddings` are written to be reused by the other
topic modules (recurrent, Bahdanau).
"""

from __future__ import annotations

import argparse
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from attnlab.errors import AttnlabError
from attnlab.explain import Topic
from attnlab.scratch import (
    GELU,
    CausalAttention,
    FeedForward,
    LayerNorm,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
)

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_TEXT = "The next day is bright"
"""The seed's example sentence (also the ``--text`` default of ``attnlab explain``)."""

SEED_INPUTS = [
    [0.43, 0.15, 0.89, 0.17, 0.23, 0.19, 0.38, 0.44],
    [0.55, 0.87, 0.66, 0.51, 0.49, 0.30, 0.20, 0.10],
    [0.57, 0.85, 0.64, 0.80, 0.10, 0.40, 0.21, 0.39],
    [0.22, 0.58, 0.33, 0.40, 0.40, 0.40, 0.10, 0.30],
    [0.77, 0.25, 0.10, 0.10, 0.90, 0.30, 0.30, 0.20],
]
"""The seed's 8-dimensional embeddings of "The next day is bright", one row per token."""

EMBED_DIM = 8
D_OUT = 4
MAX_TOKENS = 32
EMBEDDING_SEED_OFFSET = 1000


# --------------------------------------------------------------------------------------------
# Steps and how they are shown
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One step of a walk-through.

    ``values`` is 2-D (one table) or 3-D (one table per entry of ``panels``, e.g. per head).
    ``shape`` is the shape of the tensor inside the module, batch dimension included where
    the module has one; ``values`` leaves out a batch dimension of size 1. ``decimals`` is how
    many decimals the tables show (the JSON keeps 6).
    """

    title: str
    explanation: str
    values: torch.Tensor
    rows: Sequence[str]
    columns: Sequence[str]
    shape: tuple[int, ...] | None = None
    panels: Sequence[str] | None = None
    decimals: int = 4

    def __post_init__(self) -> None:
        self.values = self.values.detach().float().cpu()
        if self.shape is None:
            self.shape = tuple(self.values.shape)
        self.shape = tuple(int(n) for n in self.shape)

    def tables(self) -> list[tuple[str | None, torch.Tensor]]:
        """``(panel label or None, 2-D tensor)`` for each table this step shows."""
        if self.values.dim() == 2:
            return [(None, self.values)]
        labels = self.panels or [str(i + 1) for i in range(self.values.shape[0])]
        return list(zip(labels, self.values))

    def to_json(self, number: int) -> dict:
        item = {
            "step": number,
            "title": self.title,
            "explanation": self.explanation,
            "shape": list(self.shape),
            "rows": list(self.rows),
            "columns": list(self.columns),
            "values": _json_values(self.values),
        }
        if self.values.dim() == 3:
            item["panels"] = [label for label, _ in self.tables()]
        return item


def format_number(value: float, decimals: int = 4) -> str:
    """Four decimals, like the seed prints; infinities as ``-inf`` / ``inf``; no ``-0.0000``."""
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    if math.isnan(value):
        return "nan"
    if round(value, decimals) == 0:
        value = 0.0
    return f"{value:.{decimals}f}"


def _json_values(values: torch.Tensor) -> list:
    """Nested lists of floats rounded to 6 decimals; -inf/inf/nan become strings (valid JSON)."""

    def convert(x: float) -> float | str:
        return x if math.isfinite(x) else format_number(x)

    def walk(item):
        if isinstance(item, list):
            return [walk(inner) for inner in item]
        return convert(round(item, 6))

    return walk(values.tolist())


def shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def to_markdown(heading: str, steps: Sequence[Step]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    out = [f"## {heading}", ""]
    for number, step in enumerate(steps, start=1):
        out += [
            f"### Step {number}. {step.title}",
            "",
            step.explanation,
            "",
            f"Shape: `{shape_text(step.shape)}`",
            "",
        ]
        for label, table in step.tables():
            if label is not None:
                out += [f"**{cell(label)}**", ""]
            out.append("| | " + " | ".join(cell(c) for c in step.columns) + " |")
            out.append("|---|" + "---:|" * len(step.columns))
            for row_label, row in zip(step.rows, table.tolist()):
                out.append(
                    f"| **{cell(row_label)}** | "
                    + " | ".join(format_number(v, step.decimals) for v in row)
                    + " |"
                )
            out.append("")
    return "\n".join(out)


def to_json(steps: Sequence[Step]) -> str:
    return json.dumps([step.to_json(n) for n, step in enumerate(steps, start=1)], indent=2) + "\n"


WIDE = 12
"""Rich tables with more columns than this (and fewer rows) are shown transposed."""


def print_rich(heading: str, steps: Sequence[Step], console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    console.rule(Text(heading, style="bold"))
    for number, step in enumerate(steps, start=1):
        console.print()
        console.print(Text(f"Step {number}. {step.title}", style="bold cyan"))
        console.print(Text(step.explanation))
        console.print(Text(f"shape {shape_text(step.shape)}", style="dim"))
        for label, table in step.tables():
            rows, columns = list(step.rows), list(step.columns)
            transposed = len(columns) > WIDE and len(rows) < len(columns)
            if transposed:
                table, rows, columns = table.T, columns, rows
            title = label
            if transposed:
                title = f"{label}, transposed to fit" if label else "(transposed to fit)"
            grid = Table(title=title, show_edge=False, pad_edge=False)
            grid.add_column("", style="bold", no_wrap=True)
            for column in columns:
                grid.add_column(Text(str(column)), justify="right", no_wrap=True)
            for row_label, row in zip(rows, table.tolist()):
                grid.add_row(Text(str(row_label)), *(format_number(v, step.decimals) for v in row))
            console.print(grid)


def emit(heading: str, steps: Sequence[Step], args: argparse.Namespace) -> None:
    """Show ``steps`` in ``args.format`` (rich, markdown, json): print, or write ``args.out`` atomically."""
    from rich.console import Console

    fmt = getattr(args, "format", "rich") or "rich"
    out = getattr(args, "out", None)
    if fmt == "json":
        text = to_json(steps)
    elif fmt == "markdown":
        text = to_markdown(heading, steps) + "\n"
    elif fmt == "rich":
        if out is None:
            console = Console(highlight=False)
            if not console.is_terminal:
                console = Console(highlight=False, width=max(console.width, 120))
            print_rich(heading, steps, console)
            return
        buffer = io.StringIO()
        print_rich(heading, steps, Console(file=buffer, width=120, color_system=None, highlight=False))
        text = buffer.getvalue()
    else:
        raise AttnlabError(f"unknown format {fmt!r}; use rich, markdown or json")

    if out is None:
        print(text, end="")
        return
    from attnlab.io import write_text_atomic

    try:
        write_text_atomic(out, text)
    except OSError as err:
        raise AttnlabError(f"cannot write {out}: {err.strerror or err}; pick another --out path") from err


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    tokens = text.split()
    if not tokens:
        raise AttnlabError(f'the text is empty; give a few words, e.g. --text "{DEFAULT_TEXT}"')
    if len(tokens) > MAX_TOKENS:
        raise AttnlabError(
            f"the text has {len(tokens)} words; the walk-through prints T x T tables, "
            f"so use at most {MAX_TOKENS} words"
        )
    return tokens


def token_embeddings(text: str, seed: int) -> tuple[list[str], torch.Tensor, str]:
    """Tokens (one per word), their ``(T, 8)`` embeddings, and a sentence saying where they came from.

    The seed's sentence gets the seed's embedding matrix; any other text gets
    ``torch.rand(T, 8)``, rounded to two decimals like the seed's, from a generator seeded with
    ``seed + EMBEDDING_SEED_OFFSET``: the weights are drawn after ``torch.manual_seed(seed)``, and
    without the offset the embeddings would repeat the weights' random numbers.
    """
    tokens = tokenize(text)
    if tokens == DEFAULT_TEXT.split():
        return (
            tokens,
            torch.tensor(SEED_INPUTS),
            "These are the seed's own embeddings of its example sentence.",
        )
    embedding_seed = seed + EMBEDDING_SEED_OFFSET
    generator = torch.Generator().manual_seed(embedding_seed)
    embeddings = torch.round(torch.rand(len(tokens), EMBED_DIM, generator=generator), decimals=2)
    return (
        tokens,
        embeddings,
        f"These are made up: torch.rand({len(tokens)}, {EMBED_DIM}) from seed {seed} + "
        f"{EMBEDDING_SEED_OFFSET} = {embedding_seed}, rounded to two decimals.",
    )


def labels(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i + 1}" for i in range(n)]


def vector_text(values: torch.Tensor) -> str:
    return "[" + ", ".join(format_number(v) for v in values.tolist()) + "]"


def check_text(steps_result: torch.Tensor, module_result: torch.Tensor, module_call: str) -> str:
    diff = (steps_result - module_result).abs().max().item()
    return f"Check: {module_call} gives the same tensor (largest difference {diff:.1e})."


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------


def input_step(tokens: list[str], x: torch.Tensor, origin: str, shape: tuple[int, ...] | None = None) -> Step:
    return Step(
        "Inputs X: one embedding per token",
        f"Each token is a vector of {x.shape[-1]} numbers (its embedding); X stacks them, one row per token. "
        f"{origin} A trained model learns its embeddings.",
        x,
        tokens,
        labels("d", x.shape[-1]),
        shape=shape,
        decimals=2,
    )


def weight_steps(w_q: torch.Tensor, w_k: torch.Tensor, w_v: torch.Tensor, how: str) -> list[Step]:
    d_in, d_out = w_q.shape
    steps = []
    for name, letter, matrix in (("query", "q", w_q), ("key", "k", w_k), ("value", "v", w_v)):
        steps.append(
            Step(
                f"Weight matrix W_{name} ({d_in} x {d_out})",
                f"A trainable matrix that projects each {d_in}-dimensional input to a {d_out}-dimensional "
                f"{name}. {how}",
                matrix,
                labels("d", d_in),
                labels(letter, d_out),
            )
        )
    return steps


def projection_steps(
    tokens: list[str], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batched: bool
) -> list[Step]:
    plural = {"query": "Queries", "key": "Keys", "value": "Values"}
    meaning = {
        "query": "what each token is looking for",
        "key": "what each token offers to be matched against",
        "value": "what each token passes on once it is attended to",
    }
    steps = []
    for name, letter, tensor in (("query", "q", q), ("key", "k", k), ("value", "v", v)):
        shown = tensor[0] if batched else tensor
        steps.append(
            Step(
                f"{plural[name]} {letter.upper()} = X W_{name}",
                f"One {name} vector per token: {meaning[name]}. Row '{tokens[0]}' is "
                f"{vector_text(shown[0])}.",
                shown,
                tokens,
                labels(letter, shown.shape[-1]),
                shape=tuple(tensor.shape),
            )
        )
    return steps


def scores_step(tokens: list[str], scores: torch.Tensor, shape: tuple[int, ...]) -> Step:
    j = 1 if len(tokens) > 1 else 0
    return Step(
        "Attention scores Q K^T",
        "Entry (i, j) is the dot product of query i with key j: how well token j matches what token i "
        f"is looking for. Rows are queries, columns are keys. For example score({tokens[0]}, {tokens[j]}) "
        f"= q_{tokens[0]} . k_{tokens[j]} = {format_number(scores[0, j].item())}.",
        scores,
        tokens,
        tokens,
        shape=shape,
    )


SOFTMAX_EXAMPLE = [0.1, -0.2, 0.3, -0.2, 0.5]


def scaling_step(scores: torch.Tensor, d_k: int) -> Step:
    x = torch.tensor(SOFTMAX_EXAMPLE)
    table = torch.stack([torch.softmax(x, dim=-1), torch.softmax(8 * x, dim=-1)])
    finite = scores[torch.isfinite(scores)]
    spread = ""
    if finite.numel() > 1:
        spread = (
            f" Here the scores' standard deviation goes from {finite.std().item():.4f} to "
            f"{(finite / math.sqrt(d_k)).std().item():.4f}."
        )
    return Step(
        "Why divide by sqrt(d_k) before the softmax",
        "The softmax turns scores into weights that sum to 1, but it gets peaky when its inputs are large: "
        "multiplying the same five numbers by 8 pushes almost all the weight onto the largest one, and a "
        "near one-hot softmax has tiny gradients. The dot product of two d_k-dimensional vectors has a "
        f"variance that grows with d_k, so the scores are divided by sqrt(d_k) = sqrt({d_k}) = "
        f"{math.sqrt(d_k):g}.{spread}",
        table,
        ["softmax(x)", "softmax(8x)"],
        [f"x={v:g}" for v in SOFTMAX_EXAMPLE],
    )


def weights_step(
    tokens: list[str],
    weights: torch.Tensor,
    d_k: int,
    shape: tuple[int, ...],
    title: str = "Attention weights softmax(scores / sqrt(d_k))",
    extra: str = "",
) -> Step:
    best = int(weights[0].argmax())
    return Step(
        title,
        f"Scores divided by sqrt({d_k}) = {math.sqrt(d_k):g}, then a softmax over each row, so every row "
        f"sums to 1. Row '{tokens[0]}' is {vector_text(weights[0])}: it attends most to '{tokens[best]}'. "
        + extra,
        weights,
        tokens,
        tokens,
        shape=shape,
    )


WEIGHTED_AVERAGE = "(a weighted average, since each row of weights sums to 1)"


def context_step(
    tokens: list[str],
    context: torch.Tensor,
    shape: tuple[int, ...],
    check: str,
    title: str = "Context vectors Z = weights V",
    note: str = WEIGHTED_AVERAGE,
) -> Step:
    return Step(
        title,
        "Each token's context vector adds up the value vectors, each multiplied by the token's attention "
        f"weight for it: z_i = sum_j weights[i, j] v_j {note}. The context vector of '{tokens[0]}' is "
        f"{vector_text(context[0])}. {check}",
        context,
        tokens,
        labels("z", context.shape[-1]),
        shape=shape,
    )


def self_attention_steps(text: str, seed: int) -> list[Step]:
    """The seed's walk-through with :class:`SelfAttention_v1` (no mask, no dropout)."""
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


def layer_norm_steps(text: str, seed: int) -> list[Step]:
    """The notes' normalisation example, then :class:`LayerNorm` (biased variance, eps, scale, shift)."""
    if text.split() == DEFAULT_TEXT.split():
        torch.manual_seed(seed)
        x = torch.randn(2, 5)
        rows = ["row 1", "row 2"]
        origin = (
            f"The notes' example: torch.manual_seed({seed}); x = torch.randn(2, 5). "
            "Each row could be one token's activations."
        )
    else:
        rows, x, origin = token_embeddings(text, seed)
        origin = "One row per token of your text. " + origin
    n = x.shape[-1]
    module = LayerNorm(n)
    with torch.no_grad():
        mean = x.mean(dim=-1, keepdim=True)
        var_unbiased = x.var(dim=-1, keepdim=True, unbiased=True)
        var_biased = x.var(dim=-1, keepdim=True, unbiased=False)
        notes_norm = (x - mean) / torch.sqrt(var_unbiased)
        layer_norm = module.scale * (x - mean) / torch.sqrt(var_biased + module.eps) + module.shift
        module_out = module(x)
        after = torch.cat(
            [module_out.mean(-1, keepdim=True), module_out.var(-1, keepdim=True, unbiased=False)], -1
        )
    columns = labels("x", n)
    return [
        Step(
            "Input activations x",
            origin + " Layer normalisation works on each row separately.",
            x,
            rows,
            columns,
        ),
        Step(
            "Mean and variance of each row",
            f"mean = sum(x) / n; the unbiased variance divides the squared deviations by n - 1 = {n - 1}, "
            f"the biased one by n = {n}.",
            torch.cat([mean, var_unbiased, var_biased], dim=-1),
            rows,
            ["mean", f"var (/{n - 1})", f"var (/{n})"],
        ),
        Step(
            "The notes' normalisation (x - mean) / sqrt(unbiased var)",
            "Subtract the mean and divide by the standard deviation: every row now has mean 0 and "
            "(unbiased) variance 1. This is the calculation the notes print.",
            notes_norm,
            rows,
            columns,
        ),
        Step(
            "The learned parameters scale and shift",
            f"LayerNorm({n}) has a scale (starts at 1) and a shift (starts at 0) per feature, so "
            "training can undo the normalisation where that helps.",
            torch.stack([module.scale, module.shift]),
            ["scale", "shift"],
            columns,
        ),
        Step(
            "LayerNorm(x) = scale * (x - mean) / sqrt(biased var + eps) + shift",
            f"attnlab's LayerNorm (like GPT-2 and torch.nn.LayerNorm) uses the biased variance and eps = "
            f"{module.eps:g}. It differs from the previous table by the factor sqrt(n / (n - 1)) = "
            f"{math.sqrt(n / (n - 1)):.4f} (and the tiny eps); with hundreds of features the difference "
            "vanishes. " + check_text(layer_norm, module_out, f"LayerNorm({n})(x)"),
            layer_norm,
            rows,
            columns,
        ),
        Step(
            "After LayerNorm: mean 0, variance 1",
            "Normalised rows keep activations in a steady range from layer to layer, which makes deep "
            "networks train faster and more stably.",
            after,
            rows,
            ["mean", f"var (/{n})"],
        ),
    ]


GELU_POINTS = [-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]


def feed_forward_steps(text: str, seed: int) -> list[Step]:
    """:class:`FeedForward`: Linear(d, 4d) -> GELU -> Linear(4d, d), token by token."""
    tokens, x, origin = token_embeddings(text, seed)
    num_tokens, d = x.shape
    batch = x.unsqueeze(0)
    cfg = {
        "vocab_size": 1,
        "context_length": num_tokens,
        "emb_dim": d,
        "n_heads": 1,
        "n_layers": 1,
        "drop_rate": 0.0,
        "qkv_bias": False,
    }
    torch.manual_seed(seed)
    module = FeedForward(cfg)
    first, gelu, second = module.layers
    with torch.no_grad():
        points = torch.tensor(GELU_POINTS)
        curve = torch.stack([GELU()(points), torch.relu(points)])
        hidden = first(batch)
        activated = gelu(hidden)
        output = second(activated)
        module_output = module(batch)
        alone = module(batch[:, -1:, :])
    positionwise = (alone[0, 0] - module_output[0, -1]).abs().max().item()
    return [
        Step(
            "GELU, the activation function",
            "GELU(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Unlike ReLU it is smooth at 0 and "
            "lets small negative inputs through as small negative outputs, so those neurons still learn.",
            curve,
            ["GELU(x)", "ReLU(x)"],
            [f"x={p:g}" for p in GELU_POINTS],
        ),
        input_step(
            tokens,
            x,
            origin + f" FeedForward(cfg) with emb_dim = {d}, built after torch.manual_seed({seed}).",
            tuple(batch.shape),
        ),
        Step(
            f"Expand: hidden = X W_1^T + b_1 (Linear({d}, {4 * d}))",
            f"The first layer widens every token from {d} to 4 x {d} = {4 * d} features "
            f"(W_1 is {4 * d} x {d}).",
            hidden[0],
            tokens,
            labels("h", 4 * d),
            tuple(hidden.shape),
        ),
        Step(
            "GELU(hidden)",
            f"{int((hidden < 0).sum())} of the {hidden.numel()} hidden values were negative; "
            "GELU squashes them towards 0 instead of cutting them off.",
            activated[0],
            tokens,
            labels("h", 4 * d),
            tuple(activated.shape),
        ),
        Step(
            f"Project back: output = GELU(hidden) W_2^T + b_2 (Linear({4 * d}, {d}))",
            f"Back to {d} features per token, so the block can be stacked and added to its input. "
            "The network acts on each token separately: feeding the last token alone gives the same row "
            f"(largest difference {positionwise:.1e}). "
            + check_text(output, module_output, "FeedForward(cfg)(X)"),
            output[0],
            tokens,
            labels("d", d),
            tuple(output.shape),
        ),
    ]


def _topic(name: str, summary: str, heading: str, build: Callable[[str, int], list[Step]]) -> Topic:
    def run(args: argparse.Namespace) -> int:
        text = getattr(args, "text", None)
        text = DEFAULT_TEXT if text is None else text
        seed = getattr(args, "seed", 123)
        with torch.random.fork_rng(devices=[]):
            steps = build(text, seed)
        emit(f'{heading}: "{text}" (seed {seed})', steps, args)
        return 0

    return Topic(name, summary, run)


TOPICS = {
    topic.name: topic
    for topic in (
        _topic(
            "self-attention",
            "the seed's walk-through: X -> Q, K, V -> softmax(QK^T / sqrt(d_k)) -> context",
            "Self-attention with trainable weights (SelfAttention_v1)",
            self_attention_steps,
        ),
        _topic(
            "causal-attention",
            "hide the future: mask, masked weights, dropout, context (CausalAttention)",
            "Causal attention (CausalAttention)",
            causal_attention_steps,
        ),
        _topic(
            "multi-head",
            "split Q, K, V into heads, attend per head, merge, out_proj (MultiHeadAttention)",
            "Multi-head attention (MultiHeadAttention)",
            multi_head_steps,
        ),
        _topic(
            "layer-norm",
            "normalise each row: mean, variance, eps, scale and shift (LayerNorm)",
            "Layer normalisation (LayerNorm)",
            layer_norm_steps,
        ),
        _topic(
            "feed-forward",
            "GELU and the position-wise Linear(d, 4d) -> GELU -> Linear(4d, d) (FeedForward)",
            "The feed-forward network (FeedForward)",
            feed_forward_steps,
        ),
    )
}
