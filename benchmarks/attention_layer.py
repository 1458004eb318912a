"""One causal self-attention layer, forward + backward: time and peak memory as the sequence grows.

Three implementations of the same computation (their outputs are checked equal first):

- ``scratch``: ``attnlab.scratch.MultiHeadAttention``, the attention overview's class: separate Q/K/V matrices,
  the (T, T) score matrix built, masked, soft-maxed and kept for the backward pass: the baseline;
- ``fast``: ``attnlab.layers.attention.MultiHeadAttention``: one fused QKV matrix and
  ``scaled_dot_product_attention(is_causal=True)`` (a flash-style kernel that never stores the
  (T, T) matrix);
- ``torch``: ``torch.nn.MultiheadAttention`` (batch_first, causal mask, ``need_weights=False``).

Each (implementation, T) runs in a fresh process, so that its peak memory is its own: on a CPU the
growth of the process's peak resident memory (``ru_maxrss``) over one forward + backward, on a GPU
``torch.cuda.max_memory_allocated``. Times are the median of several forward + backward passes.
Issue 10's target: ``fast`` >= 1.5x ``scratch`` at T = 1024, memory linear in T.

    python benchmarks/attention_layer.py
    python benchmarks/attention_layer.py --device cuda --dtype bfloat16 --batch 8 --width 768 --heads 12
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import describe, machine, median, report, set_threads, sync, table
from torch import nn

from attnlab.layers.attention import MultiHeadAttention as FastAttention
from attnlab.scratch import MultiHeadAttention as ScratchAttention

NAME = "attention_layer"
TITLE = "Attention layer forward + backward: scratch vs fast vs torch.nn.MultiheadAttention"
COMMAND = "python benchmarks/attention_layer.py"
IMPLEMENTATIONS = ("scratch", "fast", "torch")


def build(kind: str, width: int, heads: int, length: int) -> nn.Module:
    if kind == "scratch":
        return ScratchAttention(width, width, length, 0.0, heads, qkv_bias=True)
    if kind == "fast":
        return FastAttention(width, heads, causal=True)
    return nn.MultiheadAttention(width, heads, batch_first=True)


def forward(kind: str, layer: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if kind == "scratch":
        return layer(x)
    if kind == "fast":
        return layer(x)[0]
    return layer(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0]


def causal_mask(length: int, device: str) -> torch.Tensor:
    """torch.nn.MultiheadAttention's convention: True = may NOT attend."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


def copy_weights(scratch: nn.Module, fast: nn.Module, ref: nn.MultiheadAttention) -> None:
    """Give ``fast`` and ``ref`` the weights of ``scratch``."""
    with torch.no_grad():
        w = torch.cat([scratch.W_query.weight, scratch.W_key.weight, scratch.W_value.weight])
        b = torch.cat([scratch.W_query.bias, scratch.W_key.bias, scratch.W_value.bias])
        fast.qkv.weight.copy_(w), fast.qkv.bias.copy_(b)
        ref.in_proj_weight.copy_(w), ref.in_proj_bias.copy_(b)
        for target in (fast.proj, ref.out_proj):
            target.weight.copy_(scratch.out_proj.weight), target.bias.copy_(scratch.out_proj.bias)


def check_equal(width: int, heads: int, device: str) -> float:
    """Largest output difference between the three on one input (they compute the same thing)."""
    torch.manual_seed(0)
    length = 48
    layers = {kind: build(kind, width, heads, length).to(device) for kind in IMPLEMENTATIONS}
    copy_weights(layers["scratch"], layers["fast"], layers["torch"])
    x = torch.randn(2, length, width, device=device)
    with torch.no_grad():
        outs = {k: forward(k, m, x, causal_mask(length, device)) for k, m in layers.items()}
    return max((outs[k] - outs["scratch"]).abs().max().item() for k in ("fast", "torch"))


def measure_one(kind: str, length: int, batch: int, width: int, heads: int, device: str, dtype: str,
                repeats: int) -> dict:
    """Runs inside its own process: peak memory of the first forward + backward, then timings."""
    torch.manual_seed(0)
    layer = build(kind, width, heads, length).to(device=device, dtype=getattr(torch, dtype))
    x = torch.randn(batch, length, width, device=device, dtype=getattr(torch, dtype), requires_grad=True)
    mask = causal_mask(length, device) if kind == "torch" else None

    def step(length: int = length) -> None:
        part = None if mask is None else mask[:length, :length]
        forward(kind, layer, x[:, :length], part).float().sum().backward()
        layer.zero_grad(set_to_none=True)
        x.grad = None

    step(8)  # first call on a short input: libraries and thread pools start outside the measurement
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return {"impl": kind, "T": length, "peak_bytes": max(peak, 0), "ms": median(times) * 1e3,
            "samples_ms": [t * 1e3 for t in times]}


def run(lengths: list[int], batch: int = 1, width: int = 256, heads: int = 4, device: str = "cpu",
        dtype: str = "float32", repeats: int = 5, threads: int | None = None) -> dict:
    rows = []
    for length in lengths:
        reps = repeats if length <= 1024 else max(2, repeats // 2)
        for kind in IMPLEMENTATIONS:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one", kind, "--lengths", str(length),
                   "--batch", str(batch), "--width", str(width), "--heads", str(heads), "--device", device,
                   "--dtype", dtype, "--repeats", str(reps)]
            if threads:
                cmd += ["--threads", str(threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            mib = row["peak_bytes"] / 2**20
            print(f"  T={length:5d} {kind:8s} {row['ms']:10.2f} ms  {mib:9.1f} MiB", flush=True)
    by = {(r["impl"], r["T"]): r for r in rows}
    for length in lengths:
        base = by[("scratch", length)]
        for kind in IMPLEMENTATIONS:
            r = by[(kind, length)]
            r["speedup_vs_scratch"] = base["ms"] / r["ms"]
            r["memory_vs_scratch"] = r["peak_bytes"] / base["peak_bytes"] if base["peak_bytes"] else None
    return {"name": NAME, "machine": machine(device), "device": device, "dtype": dtype, "batch": batch,
            "width": width, "heads": heads, "lengths": lengths, "repeats": repeats,
            "max_output_difference": check_equal(width, heads, device), "results": rows}


def markdown(result: dict) -> str:
    by = {(r["impl"], r["T"]): r for r in result["results"]}
    rows = []
    for length in result["lengths"]:
        s, f, t = (by[(k, length)] for k in IMPLEMENTATIONS)
        rows.append([length, s["ms"], f["ms"], t["ms"], f"{f['speedup_vs_scratch']:.2f}x",
                     f"{t['speedup_vs_scratch']:.2f}x", f"{s['peak_bytes'] / 2**20:,.1f}",
                     f"{f['peak_bytes'] / 2**20:,.1f}", f"{t['peak_bytes'] / 2**20:,.1f}"])
    headers = ["T", "scratch ms", "fast ms", "torch ms", "fast vs scratch", "torch vs scratch",
               "scratch MiB", "fast MiB", "torch MiB"]
    how = "growth of peak resident memory" if result["device"] == "cpu" else "peak allocated GPU memory"
    return (f"{table(headers, rows)}\n\nBatch {result['batch']}, width {result['width']}, "
            f"{result['heads']} heads, {result['dtype']}; time = median forward + backward; memory = {how} "
            f"over one forward + backward, each case in its own process. Outputs agree to "
            f"{result['max_output_difference']:.1e}.")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="128,256,512,1024,2048,4096", help="comma-separated T values")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (halved above T=1024)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--one", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)  # internal: one case
    parser.add_argument("--out", default=None,
                        help="JSON file (default benchmarks/results/attention_layer.json)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    lengths = [int(v) for v in args.lengths.split(",") if v.strip()]
    if args.one:
        print(json.dumps(measure_one(args.one, lengths[0], args.batch, args.width, args.heads, args.device,
                                     args.dtype, args.repeats)))
        return None
    print(f"{TITLE}\n{describe(machine(args.device))}\n")
    result = run(lengths, args.batch, args.width, args.heads, args.device, args.dtype, args.repeats,
                 args.threads)
    print()
    return report(NAME, None, result, markdown, args.out)


if __name__ == "__main__":
    main()
