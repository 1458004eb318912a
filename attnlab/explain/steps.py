"""The pieces every walk-through is made of: :class:`Step`, the inputs, and the shared steps.

A walk-through is a list of :class:`Step`: a title, an explanation, the shape of the tensor inside
the module and its values, shown by :mod:`attnlab.explain.render`.

The inputs (:func:`token_embeddings`): for the default text, "The next day is bright", the
attention overview's own 5 x 8 embedding matrix, so that seed 123 prints the overview's numbers;
for any other text, one token per word with made-up embeddings ``torch.rand(T, 8)`` rounded to two
decimals like the overview's, from a generator seeded with ``seed + EMBEDDING_SEED_OFFSET`` (so
they are not the same random numbers as the weights).

The shared steps follow the scaled dot-product attention of the overview,

    Q = X W_q,  K = X W_k,  V = X W_v,  weights = softmax(Q K^T / sqrt(d_k)),  Z = weights V,

one builder per stage (:func:`weight_steps`, :func:`projection_steps`, :func:`scores_step`,
:func:`scaling_step`, :func:`weights_step`, :func:`context_step`), used by the attention topics;
:func:`input_step` and the small helpers are used by every numeric topic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from attnlab.errors import AttnlabError
from attnlab.explain import DEFAULT_TEXT, ExplainRequest, Topic
from attnlab.explain.render import emit, format_number

SEED_INPUTS = [
    [0.43, 0.15, 0.89, 0.17, 0.23, 0.19, 0.38, 0.44],
    [0.55, 0.87, 0.66, 0.51, 0.49, 0.30, 0.20, 0.10],
    [0.57, 0.85, 0.64, 0.80, 0.10, 0.40, 0.21, 0.39],
    [0.22, 0.58, 0.33, 0.40, 0.40, 0.40, 0.10, 0.30],
    [0.77, 0.25, 0.10, 0.10, 0.90, 0.30, 0.30, 0.20],
]
"""The attention overview's 8-dimensional embeddings of "The next day is bright", one row per token."""

EMBED_DIM = 8
MAX_TOKENS = 32
EMBEDDING_SEED_OFFSET = 1000


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


# --------------------------------------------------------------------------------------------
# Inputs and helpers
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

    The attention overview's sentence gets the overview's embedding matrix; any other text gets
    ``torch.rand(T, 8)``, rounded to two decimals like the overview's, from a generator seeded with
    ``seed + EMBEDDING_SEED_OFFSET``: the weights are drawn after ``torch.manual_seed(seed)``, and
    without the offset the embeddings would repeat the weights' random numbers.
    """
    tokens = tokenize(text)
    if tokens == DEFAULT_TEXT.split():
        return (
            tokens,
            torch.tensor(SEED_INPUTS),
            "These are the attention overview's own embeddings of its example sentence.",
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


# --------------------------------------------------------------------------------------------
# The stages of scaled dot-product attention
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# A topic made of steps
# --------------------------------------------------------------------------------------------


def walk_through(name: str, summary: str, heading: str, build: Callable[[str, int], list[Step]]) -> Topic:
    """A topic that runs ``build(text, seed)`` (with the global RNG left as it was) and shows its steps
    under ``heading: "text" (seed N)``."""

    def run(request: ExplainRequest) -> int:
        text = DEFAULT_TEXT if request.text is None else request.text
        seed = request.seed_or_default
        with torch.random.fork_rng(devices=[]):
            steps = build(text, seed)
        emit(f'{heading}: "{text}" (seed {seed})', steps, request.format, request.out)
        return 0

    return Topic(name, summary, run)
