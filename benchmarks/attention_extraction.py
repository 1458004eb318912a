"""Does being able to draw attention slow down the normal GPT forward pass?

``MultiHeadAttention`` has two paths: the normal one (``need_weights=False``) calls PyTorch's fused
``scaled_dot_product_attention`` and never builds the (T, T) weight matrix; ``need_weights=True``
(what ``attnlab attention`` uses) computes ``softmax(Q K^T / sqrt(d))`` explicitly and returns it.
This script times, in one run, on the same weights and inputs:

- ``plain``: a GPT forward written here without the feature (no ``need_weights`` argument, no
  weight lists, SDPA called directly): the baseline;
- ``normal``: ``model(idx)``, the library's forward with ``need_weights=False``;
- ``weights``: ``model(idx, need_weights=True)``, the explicit path (for reference: it is allowed
  to be slower, it only runs for pictures).

Each is timed in interleaved rounds (median of the rounds), in inference (``no_grad``) and, for the
first two, training (forward + backward). ``normal / plain`` near 1.0 means the feature costs nothing.

    python benchmarks/attention_extraction.py                    # CPU
    python benchmarks/attention_extraction.py --device cuda      # GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from attnlab.models.gpt import GPT, preset_config

RESULTS = Path(__file__).parent / "results" / "attention_extraction.json"


def plain_forward(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """The same computation as ``GPT.forward`` (pre-norm, learned positions), without ``need_weights``."""
    b, t = idx.shape
    x = model.drop(model.tok_emb(idx) + model.pos_emb(t, 0))
    for block in model.blocks:
        attn = block.attn
        q, k, v = (z.view(b, t, attn.n_head, attn.d_head).transpose(1, 2)
                   for z in attn.qkv(block.norm1(x)).split(attn.d_model, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(attn.d_head))
        x = x + block.dropout(attn.proj(y.transpose(1, 2).reshape(b, t, attn.d_model)))
        x = x + block.dropout(block.mlp(block.norm2(x)))
    return model.lm_head(model.norm_f(x))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_rounds(fns: dict, device: str, rounds: int, iters: int) -> dict[str, float]:
    """Median over ``rounds`` of the mean time per call (ms); the functions take turns each round."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up (allocator, thread pools, kernel choice)
        for _ in range(3):
            fn()
    sync(device)
    for r in range(rounds):
        order = list(fns.items()) if r % 2 == 0 else list(reversed(fns.items()))
        for name, fn in order:
            sync(device)
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            sync(device)
            samples[name].append((time.perf_counter() - start) / iters * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_preset(preset: str, batch: int, device: str, dtype: torch.dtype, rounds: int, iters: int) -> dict:
    torch.manual_seed(0)
    config = preset_config(preset, dropout=0.0)
    model = GPT(config).to(device=device, dtype=dtype).eval()
    t = config.context_length
    idx = torch.randint(0, config.vocab_size, (batch, t), device=device)
    with torch.no_grad():
        difference = (model(idx).float() - plain_forward(model, idx).float()).abs().max().item()
        inference = time_rounds({
            "plain": lambda: plain_forward(model, idx),
            "normal": lambda: model(idx),
            "weights": lambda: model(idx, need_weights=True),
        }, device, rounds, iters)

    def train_step(fn):
        def step():
            model.zero_grad(set_to_none=True)
            fn().float().logsumexp(-1).mean().backward()
        return step

    model.train()
    training = time_rounds({"plain": train_step(lambda: plain_forward(model, idx)),
                            "normal": train_step(lambda: model(idx))}, device, rounds, max(1, iters // 2))
    return {
        "preset": preset, "batch": batch, "context": t, "n_layer": config.n_layer, "n_head": config.n_head,
        "n_embd": config.n_embd, "max_abs_logit_difference_normal_vs_plain": difference,
        "inference_ms": inference, "training_ms": training,
        "inference_ratio_normal_over_plain": inference["normal"] / inference["plain"],
        "inference_ratio_weights_over_plain": inference["weights"] / inference["plain"],
        "training_ratio_normal_over_plain": training["normal"] / training["plain"],
    }


def machine(device: str) -> dict:
    info = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--presets", default=None,
                        help="comma-separated GPT presets (default: gpt-jc,gpt-mini on CPU; + gpt2 on CUDA)")
    parser.add_argument("--batch", type=int, default=None,
                        help="sequences per forward (default 8 CPU, 16 CUDA)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=None, help="calls per round (default 3 CPU, 20 CUDA)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON file (results of other devices are kept)")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    presets = (args.presets or ("gpt-jc,gpt-mini,gpt2" if cuda else "gpt-jc,gpt-mini")).split(",")
    batch = args.batch or (16 if cuda else 8)
    iters = args.iters or (20 if cuda else 3)
    dtype = getattr(torch, args.dtype)
    results = []
    for preset in presets:
        row = bench_preset(preset.strip(), batch, args.device, dtype, args.rounds, iters)
        results.append(row)
        ms = row["inference_ms"]
        print(f"{preset:10s} B={batch} T={row['context']:5d}  inference: plain {ms['plain']:8.2f} ms"
              f"  normal {ms['normal']:8.2f} ms  (x{row['inference_ratio_normal_over_plain']:.3f})"
              f"  need_weights {ms['weights']:8.2f} ms"
              f" (x{row['inference_ratio_weights_over_plain']:.2f})  |  training: normal/plain"
              f" x{row['training_ratio_normal_over_plain']:.3f}")
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    key = "cuda" if cuda else "cpu"
    previous[key] = {"machine": machine(args.device), "dtype": args.dtype, "rounds": args.rounds,
                     "iters": iters, "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(previous, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
