"""Training-step speed at nanoGPT's CPU recipe: attnlab's GPT against the attention overview's step-by-step GPT.

The recipe (nanoGPT's shakespeare_char on a CPU): 4 layers, 4 heads, width 128, context 64,
batch 12, a 65-character vocabulary, dropout 0. One step = forward, cross-entropy, backward,
gradient clipping at 1.0, AdamW. Three candidates run in turns in the same process:

- ``scratch``: ``attnlab.scratch.GPTModel`` (the attention overview's classes: separate Q/K/V matrices, an
  explicit (T, T) softmax, hand-written LayerNorm and GELU) in a plain loop: the baseline;
- ``attnlab``: ``attnlab.models.GPT`` (fused QKV, ``scaled_dot_product_attention``) in the same loop;
- ``trainer``: the same model through ``Trainer.train_step``, i.e. what ``attnlab train`` runs
  (batch drawing, learning-rate schedule, accumulation bookkeeping included).

Both models have the same shapes (biases on, as in the seed; nanoGPT's recipe has none), hence
the same FLOPs: ``6 N + 12 L T d`` per token. MFU is reported against a large float32 matmul
timed in the same run (on a GPU: against the published bf16/tf32 peak and a measured matmul).

    python benchmarks/train_gpt.py
    python benchmarks/train_gpt.py --device cuda --dtype bfloat16 --compile
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F
from common import interleaved, machine, median, random_tokens, report, set_threads, table

from attnlab.data.batching import LanguageModelObjective
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.scratch import GPTModel
from attnlab.training import mfu
from attnlab.training.optim import build_optimizer
from attnlab.training.trainer import TrainConfig, Trainer

NAME = "train_gpt"
TITLE = "GPT training step at nanoGPT's CPU recipe"
COMMAND = "python benchmarks/train_gpt.py"
RECIPE = dict(n_layer=4, n_head=4, n_embd=128, context_length=64, vocab_size=65, batch=12)
NANOGPT_TOKENS_PER_SEC = 11_300  # nanoGPT's own code, this recipe, the 2-core machine of issue 3


def loop_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              autocast) -> None:
    with autocast:
        logits = model(x)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def peaks(device: str, dtype: str) -> dict[str, float]:
    """FLOP/s to measure MFU against: a matmul timed now (and, on GPUs, the data-sheet peak)."""
    matmul_dtype = torch.bfloat16 if dtype == "bfloat16" and device.startswith("cuda") else torch.float32
    measured = mfu.measure_matmul_flops(device, matmul_dtype)
    out = {"matmul_n": measured["n"], "matmul_median": measured["median"], "matmul_best": measured["best"]}
    published = mfu.gpu_peak_flops(device, dtype)
    if published:
        out["published"] = published
    return out


def run(device: str = "cpu", dtype: str = "float32", compile: bool = False, rounds: int = 7,
        steps: int = 3) -> dict:
    r = RECIPE
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=r["vocab_size"], context_length=r["context_length"], n_layer=r["n_layer"],
                       n_head=r["n_head"], n_embd=r["n_embd"], dropout=0.0, bias=True)
    ours = GPT(config).to(device)
    scratch = GPTModel({"vocab_size": r["vocab_size"], "context_length": r["context_length"],
                        "emb_dim": r["n_embd"], "n_heads": r["n_head"], "n_layers": r["n_layer"],
                        "drop_rate": 0.0, "qkv_bias": True}).to(device)
    train = TrainConfig(steps=10**6, batch_size=r["batch"], lr=1e-3, warmup_steps=0, device=device,
                        dtype=dtype, compile=compile, eval_every=10**6, ckpt_every=10**6)
    x = random_tokens(r["vocab_size"], (r["batch"], r["context_length"]), seed=1, device=device)
    y = random_tokens(r["vocab_size"], (r["batch"], r["context_length"]), seed=2, device=device)
    autocast = (torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if dtype == "bfloat16"
                else contextlib.nullcontext())
    ours_loop = torch.compile(ours) if compile else ours
    opt_ours, opt_scratch = build_optimizer(ours, train), build_optimizer(scratch, train)

    torch.manual_seed(0)
    trainer_model = GPT(config)
    ids = random_tokens(r["vocab_size"], (200_000,), seed=3)
    objective = LanguageModelObjective(ids[:180_000], ids[180_000:], r["context_length"], seed=0)
    trainer = Trainer(trainer_model, objective, train, progress=False)

    candidates = {
        "scratch": lambda: loop_step(scratch, opt_scratch, x, y, autocast),
        "attnlab": lambda: loop_step(ours_loop, opt_ours, x, y, autocast),
        "trainer": trainer.train_step,
    }
    peak = peaks(device, dtype)  # before and after the steps: the machine's load moves
    samples = interleaved(candidates, rounds=rounds, device=device, warmup=2 if compile else 1, calls=steps)
    peak_after = peaks(device, dtype)
    peak["matmul_median"] = median([peak["matmul_median"], peak_after["matmul_median"]])
    peak["matmul_best"] = max(peak["matmul_best"], peak_after["matmul_best"])

    tokens = r["batch"] * r["context_length"]
    flops = ours.flops_per_token(r["context_length"])
    rows = {}
    for name, times in samples.items():
        seconds = median(times)
        tps = tokens / seconds
        rows[name] = {"ms_per_step": seconds * 1e3, "tokens_per_sec": tps,
                      "mfu_vs_matmul": mfu.mfu(tps, flops, peak["matmul_median"]),
                      "samples_ms": [t * 1e3 for t in times]}
        if "published" in peak:
            rows[name]["mfu_vs_published"] = mfu.mfu(tps, flops, peak["published"])
    base = rows["scratch"]["tokens_per_sec"]
    for row in rows.values():
        row["speedup_vs_scratch"] = row["tokens_per_sec"] / base
    return {"name": NAME, "machine": machine(device), "device": device, "dtype": dtype, "compile": compile,
            "recipe": RECIPE, "parameters": ours.parameter_count(), "flops_per_token": flops,
            "tokens_per_step": tokens, "rounds": rounds, "steps_per_round": steps, "peak_flops": peak,
            "results": rows, "nanogpt_reference_tokens_per_sec": NANOGPT_TOKENS_PER_SEC}


def markdown(result: dict) -> str:
    peak = result["peak_flops"]
    rows = []
    for name, label in (("scratch", "scratch GPTModel (baseline)"), ("attnlab", "attnlab GPT, plain loop"),
                        ("trainer", "attnlab GPT, Trainer.train_step")):
        row = result["results"][name]
        rows.append([label, row["ms_per_step"], row["tokens_per_sec"], f"{row['speedup_vs_scratch']:.2f}x",
                     f"{100 * row['mfu_vs_matmul']:.0f}%"])
    text = table(["model", "ms / step", "tokens / s", "vs scratch", "MFU vs matmul"], rows)
    ref = result["nanogpt_reference_tokens_per_sec"]
    trainer_tps = result["results"]["trainer"]["tokens_per_sec"]
    n = int(peak["matmul_n"])
    kind = "bf16" if result["dtype"] == "bfloat16" and result["device"].startswith("cuda") else "fp32"
    return (f"{text}\n\nPeak: a {n}x{n} {kind} matmul timed in the same run, "
            f"{peak['matmul_median'] / 1e9:,.1f} GFLOP/s (median; best {peak['matmul_best'] / 1e9:,.1f}). "
            f"{result['parameters'] / 1e6:.2f} M parameters, {result['flops_per_token'] / 1e6:.2f} MFLOP per "
            f"token, {result['tokens_per_step']} tokens per step; "
            f"median of {result['rounds']} rounds of {result['steps_per_round']} steps. "
            f"Issue 3's reference, nanoGPT's own code on its 2-core machine: {ref:,} tokens/s "
            f"(attnlab's trainer here: {trainer_tps / ref:.2f}x that{busy_note(result['machine'])}).")


def busy_note(info: dict) -> str:
    load, cores = info.get("load_average", [0])[0], info.get("cores") or 1
    if load > cores:
        return f", with the machine busy: load average {load:.1f} on {cores} cores"
    return ""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile attnlab's GPT (not the baseline)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3, help="steps per round and candidate")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/train_gpt.json)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    result = run(args.device, args.dtype, args.compile, args.rounds, args.steps)
    return report(NAME, TITLE, result, markdown, args.out)


if __name__ == "__main__":
    main()
