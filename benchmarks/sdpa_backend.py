"""Which kernel does ``scaled_dot_product_attention`` run inside attnlab's GPT on this device?

PyTorch picks the kernel at run time (flash attention, memory-efficient attention, cuDNN, or the
plain "math" version that builds the (T, T) matrix). This script runs one training step (forward
and backward) of a GPT under the profiler and reports the attention operators that ran, then,
on CUDA, runs the step again with only the flash kernel allowed, which fails if flash cannot be
used. Exit status 0 means the flash kernel was used on the normal path.

    python benchmarks/sdpa_backend.py                                   # CPU: the CPU flash kernel
    python benchmarks/sdpa_backend.py --device cuda --dtype bfloat16    # GPU: FlashAttention
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import torch
from common import machine, write_result

from attnlab.models.gpt import GPT, PRESETS, GPTConfig
from attnlab.training.distributed import resolve_device, setup

NAME = "sdpa_backend"
BACKENDS = {"flash": "flash", "efficient": "efficient_attention", "cudnn": "cudnn", "math": "_math"}


def training_step(model: GPT, idx: torch.Tensor, dtype: str) -> None:
    autocast = (torch.autocast(idx.device.type, dtype=torch.bfloat16) if dtype == "bfloat16"
                else contextlib.nullcontext())
    with autocast:
        loss = model(idx).float().logsumexp(-1).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)


def attention_ops(model: GPT, idx: torch.Tensor, dtype: str) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if idx.is_cuda else [])
    with profile(activities=activities) as prof:
        training_step(model, idx, dtype)
        if idx.is_cuda:
            torch.cuda.synchronize()
    return sorted({e.name for e in prof.events() if is_attention_op(e.name)})


def is_attention_op(name: str) -> bool:
    low = name.lower()
    return ("scaled_dot_product" in low or "flash" in low or "fmha" in low
            or ("cudnn" in low and "attention" in low))


def run(device: str, dtype: str, preset: str, batch: int) -> dict:
    setup(device)  # the trainer's device set-up (TF32, SDPA preferences on CUDA)
    dev = resolve_device(device)
    shape = {**PRESETS[preset], "dropout": 0.0}
    shape.setdefault("vocab_size", 65)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**shape)).to(dev)
    idx = torch.randint(0, model.config.vocab_size, (batch, model.config.context_length), device=dev)
    training_step(model, idx, dtype)  # warm-up
    ops = attention_ops(model, idx, dtype)
    used = sorted({backend for backend, key in BACKENDS.items() if any(key in op.lower() for op in ops)})
    result = {"name": NAME, "machine": machine(str(dev)), "device": str(dev), "dtype": dtype,
              "preset": preset, "attention_ops": ops, "backends_seen": used, "flash_used": "flash" in used}
    if dev.type == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        try:
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                training_step(model, idx, dtype)
            result["flash_only_step"] = "ok"
        except RuntimeError as err:
            result["flash_only_step"] = f"failed: {str(err).splitlines()[0]}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--preset", default="gpt-mini")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", default=None,
                        help="JSON file (default benchmarks/results/sdpa_backend.json)")
    args = parser.parse_args(argv)
    result = run(args.device, args.dtype, args.preset, args.batch)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"wrote {write_result(NAME, result, args.out)}")
    return 0 if result["flash_used"] else 1


if __name__ == "__main__":
    sys.exit(main())
