"""Walk-throughs of the recurrent era, and the measurement that shows why attention replaced it.

Topics:

- ``rnn``: one Elman cell read over the text, token by token: ``U x_t``, ``W h_{t-1}``, ``tanh``.
- ``lstm``: one LSTM cell, token by token: ``[h_{t-1}, x_t]``, the forget / input / output gates, the
  candidate, the cell state and the hidden state.
- ``vanishing-gradients``: no training. For a freshly initialised RNN, LSTM and GPT of similar size,
  the norm of ``d loss(at position T) / d input(at position t)`` for every t: a table, and a
  log-scale plot (``--out``, default ``vanishing-gradients.png``).

The walk-throughs reuse the inputs of :mod:`attnlab.explain.steps` (the attention overview's
embeddings for its sentence), the printing of :mod:`attnlab.explain.render` (rich / markdown /
JSON) and the cells of :mod:`attnlab.scratch.recurrent` (hidden size 4, built after
``torch.manual_seed(seed)``); each ends by checking the steps against the cell's own unrolled
forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.explain import DEFAULT_TEXT, ExplainRequest, Topic
from attnlab.explain.render import emit
from attnlab.explain.steps import Step, check_text, labels, token_embeddings, vector_text
from attnlab.scratch.recurrent import ElmanRNNCell, LSTMCell, unroll

HIDDEN = 4


# --------------------------------------------------------------------------------------------
# rnn
# --------------------------------------------------------------------------------------------


def _influence_step(tokens: list[str], cell, x: Tensor, what: str) -> Step:
    """||d h_T / d x_t||: how much each token can still move the last hidden state."""
    x = x.clone().requires_grad_(True)
    _, state = unroll(cell, x.unsqueeze(0))
    h_last = cell.output(state)
    norms = []
    for unit in range(h_last.shape[-1]):  # the Jacobian's rows, one hidden unit at a time
        (grad,) = torch.autograd.grad(h_last[0, unit], x, retain_graph=True)
        norms.append(grad)
    jacobian = torch.stack(norms)  # (hidden, T, d_in)
    influence = jacobian.pow(2).sum(dim=(0, 2)).sqrt().unsqueeze(1)
    first, last = influence[0, 0].item(), influence[-1, 0].item()
    return Step(
        "How much each token still matters: ||d h_T / d x_t||",
        f"The size of the gradient of the last hidden state with respect to each input. Going back one step "
        f"multiplies it by {what}, so earlier tokens tend to matter less: here the first token's influence "
        f"is {first:.4f}, the last one's {last:.4f}. This is the vanishing gradient that "
        "'attnlab explain vanishing-gradients' measures on whole models.",
        influence.detach(),
        tokens,
        ["norm"],
    )


def rnn_steps(text: str, seed: int) -> list[Step]:
    tokens, x, origin = token_embeddings(text, seed)
    n, d_in = x.shape
    torch.manual_seed(seed)
    cell = ElmanRNNCell(d_in, HIDDEN)
    W, U, b = cell.W.detach(), cell.U.detach(), cell.b.detach()
    ux = x @ U.T
    h = torch.zeros(HIDDEN)
    recurrent, pre, hidden = [], [], []
    for t in range(n):
        recurrent.append(W @ h)
        pre.append(recurrent[-1] + ux[t] + b)
        h = torch.tanh(pre[-1])
        hidden.append(h)
    recurrent_t, pre_t, hidden_t = torch.stack(recurrent), torch.stack(pre), torch.stack(hidden)
    with torch.no_grad():
        module_out, _ = unroll(cell, x.unsqueeze(0))
    units = labels("h", HIDDEN)
    return [
        Step("Inputs x_t: one embedding per token",
             f"The RNN reads these rows one at a time, in order. {origin}", x, tokens, labels("d", d_in),
             shape=(1, n, d_in)),
        Step(f"Input weights U ({HIDDEN} x {d_in})",
             f"ElmanRNNCell({d_in}, {HIDDEN}) after torch.manual_seed({seed}); every weight starts uniform "
             f"in +-1/sqrt({HIDDEN}). U maps an input to the hidden size.", U, units, labels("d", d_in)),
        Step(f"Recurrent weights W ({HIDDEN} x {HIDDEN}) and bias b",
             "W mixes the previous hidden state into the new one; the same W (and U, b) is used at every "
             "step. The last row is the bias b.", torch.cat([W, b.unsqueeze(0)]), units + ["b"], units),
        Step("U x_t for every token",
             "The input's contribution. It depends on the token only, so all rows can be computed at once "
             "(the fast path does exactly this, as one matrix product before the loop).",
             ux, tokens, units, shape=(1, n, HIDDEN)),
        Step("W h_{t-1}: what the past contributes",
             "This is the part that must be computed one step after another: h_{t-1} is needed before h_t. "
             "The first row is zero because the state starts at h_0 = 0.",
             recurrent_t, tokens, units, shape=(1, n, HIDDEN)),
        Step("Pre-activation a_t = W h_{t-1} + U x_t + b", "The sum of the three tables above, row by row.",
             pre_t, tokens, units, shape=(1, n, HIDDEN)),
        Step("Hidden state h_t = tanh(a_t)",
             f"tanh squashes each unit into (-1, 1). The last row, {vector_text(hidden_t[-1])}, is all the "
             "network remembers of the whole text: the compressed past. "
             + check_text(hidden_t, module_out[0], "unroll(cell, X)"),
             hidden_t, tokens, units, shape=(1, n, HIDDEN)),
        _influence_step(tokens, cell, x, f"W^T diag(1 - h_t^2) (W's largest singular value is "
                                         f"{torch.linalg.matrix_norm(W, ord=2).item():.2f}, and tanh' <= 1)"),
    ]


# --------------------------------------------------------------------------------------------
# lstm
# --------------------------------------------------------------------------------------------


def lstm_steps(text: str, seed: int) -> list[Step]:
    tokens, x, origin = token_embeddings(text, seed)
    n, d_in = x.shape
    torch.manual_seed(seed)
    cell = LSTMCell(d_in, HIDDEN)
    weights = {g: getattr(cell, f"W_{g}").detach() for g in ("f", "i", "o", "c")}
    biases = {g: getattr(cell, f"b_{g}").detach() for g in ("f", "i", "o", "c")}
    h, c = torch.zeros(HIDDEN), torch.zeros(HIDDEN)
    rows: dict[str, list[Tensor]] = {k: [] for k in ("hx", "f", "i", "o", "c_tilde", "c", "h")}
    for t in range(n):
        hx = torch.cat([h, x[t]])
        f = torch.sigmoid(weights["f"] @ hx + biases["f"])
        i = torch.sigmoid(weights["i"] @ hx + biases["i"])
        o = torch.sigmoid(weights["o"] @ hx + biases["o"])
        c_tilde = torch.tanh(weights["c"] @ hx + biases["c"])
        c = f * c + i * c_tilde
        h = o * torch.tanh(c)
        step = {"hx": hx, "f": f, "i": i, "o": o, "c_tilde": c_tilde, "c": c, "h": h}
        for key, value in step.items():
            rows[key].append(value)
    table = {k: torch.stack(v) for k, v in rows.items()}
    with torch.no_grad():
        module_out, (_, module_c) = unroll(cell, x.unsqueeze(0))
    units = labels("h", HIDDEN)
    hx_columns = [f"h{j + 1}(t-1)" for j in range(HIDDEN)] + labels("x", d_in)
    gate_names = ["f: forget", "i: input", "o: output", "C~: candidate"]
    kept = table["f"].mean().item()
    return [
        Step("Inputs x_t: one embedding per token",
             f"The LSTM reads these rows one at a time, in order. {origin}", x, tokens, labels("d", d_in),
             shape=(1, n, d_in)),
        Step(f"Gate weights W_f, W_i, W_o, W_c ({HIDDEN} x {HIDDEN + d_in} each)",
             f"LSTMCell({d_in}, {HIDDEN}) after torch.manual_seed({seed}). Each gate looks at the previous "
             f"hidden state and the input together, [h_(t-1), x_t] ({HIDDEN} + {d_in} columns).",
             torch.stack([weights[g] for g in ("f", "i", "o", "c")]), units, hx_columns, panels=gate_names),
        Step("Gate biases b_f, b_i, b_o, b_c", "One bias per gate and unit.",
             torch.stack([biases[g] for g in ("f", "i", "o", "c")]), gate_names, units),
        Step("[h_(t-1), x_t]: what every gate reads",
             "The previous hidden state next to the current input. The first row starts with zeros: "
             "h_0 = 0.", table["hx"], tokens, hx_columns, shape=(1, n, HIDDEN + d_in)),
        Step("Gates f_t, i_t, o_t = sigma(W [h_(t-1), x_t] + b)",
             "Each gate is a sigmoid, between 0 (closed) and 1 (open). f decides how much of the old cell "
             "state to keep, i how much of the candidate to write, o how much of the cell to show. "
             f"Averaged over tokens and units, the forget gate keeps {kept:.0%} here.",
             torch.stack([table["f"], table["i"], table["o"]]), tokens, units,
             panels=["f_t (forget)", "i_t (input)", "o_t (output)"], shape=(3, 1, n, HIDDEN)),
        Step("Candidate C~_t = tanh(W_c [h_(t-1), x_t] + b_c)",
             "New content proposed for the cell, in (-1, 1).", table["c_tilde"], tokens, units,
             shape=(1, n, HIDDEN)),
        Step("Cell state C_t = f_t * C_(t-1) + i_t * C~_t",
             "The LSTM's memory. It is updated by addition, not by a matrix product: going back one step "
             "multiplies its gradient by f_t only, so with forget gates near 1 information (and gradient) "
             "survives for many steps. "
             + check_text(table["c"][-1], module_c[0], "unroll(cell, X)'s final C"),
             table["c"], tokens, units, shape=(1, n, HIDDEN)),
        Step("Hidden state h_t = o_t * tanh(C_t)",
             "What the cell shows the next layer and the next step. "
             + check_text(table["h"], module_out[0], "unroll(cell, X)"),
             table["h"], tokens, units, shape=(1, n, HIDDEN)),
        _influence_step(tokens, cell, x, f"the forget gate along the cell-state path (here {kept:.2f} on "
                                         "average), plus the gates' own paths"),
    ]


# --------------------------------------------------------------------------------------------
# vanishing-gradients
# --------------------------------------------------------------------------------------------

SEQUENCE_LENGTH = 64
VOCAB = 64
BATCH = 8
DEFAULT_PLOT = "vanishing-gradients.png"


@dataclass
class GradientFlow:
    name: str
    description: str
    parameters: int
    norms: Tensor  # (T,): mean over the batch of ||d loss_T / d x_t||, index t


def _models(length: int):
    """A freshly initialised RNN, LSTM and GPT of similar size (about 60-100k parameters)."""
    from attnlab.models.gpt import GPT, GPTConfig
    from attnlab.models.recurrent import LSTMLM, RNNLM, LSTMLMConfig, RNNLMConfig

    rnn = RNNLM(RNNLMConfig(vocab_size=VOCAB, n_embd=64, hidden_size=128, n_layer=2, context_length=length))
    lstm = LSTMLM(LSTMLMConfig(vocab_size=VOCAB, n_embd=64, hidden_size=64, n_layer=2, context_length=length))
    gpt = GPT(GPTConfig(vocab_size=VOCAB, context_length=length, n_layer=2, n_head=4, n_embd=64))
    return [("RNN", "RNNLM, 2 layers of 128", rnn), ("LSTM", "LSTMLM, 2 layers of 64", lstm),
            ("GPT", "GPT, 2 layers of 64, 4 heads", gpt)]


def input_gradient_norms(model: torch.nn.Module, idx: Tensor, targets: Tensor) -> Tensor:
    """Mean over the batch of ||d loss / d x_t|| for each position t, where x_t is the input embedding of
    token t and the loss is the cross-entropy at the last position only."""
    captured: list[Tensor] = []

    def keep(_module, _inputs, output: Tensor) -> None:
        output.retain_grad()
        captured.append(output)

    handle = model.tok_emb.register_forward_hook(keep)  # both GPT and the recurrent LMs embed with tok_emb
    try:
        model.eval()
        logits = model(idx)
        loss = torch.nn.functional.cross_entropy(logits[:, -1].float(), targets, reduction="sum")
        loss.backward()
    finally:
        handle.remove()
    return captured[0].grad.norm(dim=-1).mean(dim=0).detach()


def measure_gradient_flow(seed: int, length: int = SEQUENCE_LENGTH, batch: int = BATCH) -> list[GradientFlow]:
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(VOCAB, (batch, length), generator=generator)
    targets = torch.randint(VOCAB, (batch,), generator=generator)
    torch.manual_seed(seed)
    flows = []
    for name, description, model in _models(length):
        flows.append(GradientFlow(name, description, sum(p.numel() for p in model.parameters()),
                                  input_gradient_norms(model, idx, targets)))
    return flows


def distances_shown(length: int) -> list[int]:
    """0, 1, 2, 4, 8, ... and the largest distance."""
    shown, d = [0], 1
    while d < length - 1:
        shown.append(d)
        d *= 2
    return shown + [length - 1]


def write_plot(flows: list[GradientFlow], path: Path, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnlab.checkpoint import write_atomic

    length = len(flows[0].norms)
    distance = list(range(length))
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for flow in flows:
        by_distance = flow.norms.flip(0).clamp_min(1e-30).tolist()
        ax.plot(distance, by_distance, label=f"{flow.description} ({flow.parameters / 1000:.0f}k parameters)",
                linewidth=2)
    ax.set_yscale("log")
    ax.set_xlabel("distance T - t (tokens back from the predicted position)")
    ax.set_ylabel(f"||d loss_T / d x_t||  (mean over {BATCH} sequences)")
    ax.set_title(f"Gradient reaching each input at initialisation (T = {length - 1}, seed {seed})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()

    def save(tmp: str) -> None:
        fig.savefig(tmp, format="png")

    try:
        write_atomic(path, save)
    except OSError as err:
        raise AttnlabError(f"cannot write the plot to {path}: {err.strerror or err}; pick another --out"
                           ) from None
    finally:
        plt.close(fig)


def vanishing_gradient_steps(flows: list[GradientFlow], plot: Path) -> list[Step]:
    length = len(flows[0].norms)
    shown = distances_shown(length)
    by_distance = torch.stack([f.norms.flip(0) for f in flows], dim=1)  # (T, models), row d = distance
    rows = [f"d = {d}" for d in shown]
    columns = [f.name for f in flows]
    sizes = "; ".join(f"{f.description}: {f.parameters:,} parameters" for f in flows)
    far = ", ".join(f"{f.name} {(f.norms[0] / f.norms[-2]).item():.1e}" for f in flows)
    return [
        Step(
            "Gradient reaching the input d steps back: log10 ||d loss_T / d x_(T-d)||",
            f"Three freshly initialised models of similar size ({sizes}) read the same {BATCH} random "
            f"sequences of {length} tokens; the loss is the cross-entropy at the last position T only. The "
            "table shows the size of its gradient with respect to each input embedding, d tokens back, as a "
            "power of ten (-3 means 0.001). Nothing is trained: this is how well each architecture can send "
            f"a learning signal back in time before it has learned anything. Plot (log scale): {plot}.",
            by_distance[shown].clamp_min(1e-30).log10(), rows, columns, shape=(length, len(flows)),
        ),
        Step(
            "Relative to the previous token (d = 1)",
            "The same gradients divided by each model's value at d = 1. In the RNN the gradient is "
            "multiplied by W^T diag(1 - h^2) at every step back, so it shrinks geometrically with distance: "
            "distant tokens get almost no learning signal. The LSTM's additive cell state (multiplied by the "
            "forget gate, about sigma(1) = 0.73 at initialisation) fades more slowly. Attention connects "
            "every position to every other directly, so the GPT's gradient does not depend on distance at "
            "all. (d = 0 is the predicted position's own input; in the GPT it reaches the output through the "
            f"residual stream, hence its larger value.) Farthest over previous token: {far}.",
            (by_distance / by_distance[1])[shown], rows, columns, shape=(length, len(flows)),
        ),
    ]


def run_vanishing_gradients(request: ExplainRequest) -> int:
    """Measure, write the plot to ``request.out`` (a PNG; default :data:`DEFAULT_PLOT`) and print the
    table in ``request.format`` (``out`` is the plot here, so the table always goes to the terminal)."""
    plot = Path(request.out or DEFAULT_PLOT)
    if plot.suffix.lower() != ".png":
        raise AttnlabError(f"vanishing-gradients writes a PNG plot: give --out a .png file name, got {plot}")
    seed = request.seed_or_default
    flows = measure_gradient_flow(seed)
    write_plot(flows, plot, seed)
    emit("Why attention won: gradient flow through time", vanishing_gradient_steps(flows, plot), request.format)
    return 0


# --------------------------------------------------------------------------------------------


def _walk_through(heading: str, build):
    def run(request: ExplainRequest) -> int:
        text = DEFAULT_TEXT if request.text is None else request.text
        emit(heading, build(text, request.seed_or_default), request.format, request.out)
        return 0

    return run


TOPICS = {
    "rnn": Topic("rnn", "the Elman RNN cell read token by token: h_t = tanh(W h_(t-1) + U x_t + b)",
                 _walk_through("The RNN cell, step by step", rnn_steps)),
    "lstm": Topic("lstm", "the LSTM cell step by step: forget, input and output gates, the cell state",
                  _walk_through("The LSTM cell, step by step", lstm_steps)),
    "vanishing-gradients": Topic(
        "vanishing-gradients",
        "why RNNs lost: gradient reaching inputs t steps back, RNN vs LSTM vs GPT (table + PNG plot)",
        run_vanishing_gradients),
}

__all__ = ["TOPICS", "rnn_steps", "lstm_steps", "measure_gradient_flow", "input_gradient_norms",
           "vanishing_gradient_steps", "GradientFlow"]
