"""Walk-throughs of the rest of a Transformer block, computed live with :mod:`attnlab.scratch`.

Topics:

- ``layer-norm`` (:class:`LayerNorm`): the attention overview's normalisation example, then
  ``LayerNorm(x) = scale * (x - mean) / sqrt(var + eps) + shift`` with the biased variance
  ``var = sum((x - mean)^2) / n``, checked against the module.
- ``feed-forward`` (:class:`FeedForward`): ``GELU(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``
  and the position-wise ``Linear(d, 4d) -> GELU -> Linear(4d, d)``, checked against the module.
"""

from __future__ import annotations

import math

import torch

from attnlab.explain import DEFAULT_TEXT, Topic
from attnlab.explain.steps import Step, check_text, input_step, labels, token_embeddings, walk_through
from attnlab.scratch import GELU, FeedForward, LayerNorm


def layer_norm_steps(text: str, seed: int) -> list[Step]:
    """The attention overview's normalisation example, then :class:`LayerNorm` (biased variance, eps, scale, shift)."""
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


TOPICS: dict[str, Topic] = {
    topic.name: topic
    for topic in (
        walk_through(
            "layer-norm",
            "normalise each row: mean, variance, eps, scale and shift (LayerNorm)",
            "Layer normalisation (LayerNorm)",
            layer_norm_steps,
        ),
        walk_through(
            "feed-forward",
            "GELU and the position-wise Linear(d, 4d) -> GELU -> Linear(4d, d) (FeedForward)",
            "The feed-forward network (FeedForward)",
            feed_forward_steps,
        ),
    )
}
