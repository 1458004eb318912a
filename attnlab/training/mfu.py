"""Model FLOPs utilisation (MFU): how much of the hardware's arithmetic a training step uses.

A training step of a Transformer costs, per token (Kaplan et al. 2020; the PaLM paper's appendix B)::

    F = 6 N + 12 L T d

``6 N``: each of the ``N`` matrix weights takes one multiply-add (2 FLOPs) in the forward pass and
two in the backward pass (gradients of the input and of the weight). ``12 L T d``: attention's
``Q K^T`` and ``A V`` products, ``L`` layers, context ``T``, width ``d``, forward and backward.
Then::

    MFU = F * tokens_per_second / peak_FLOPs

The peak is either the GPU's published dense tensor-core figure for the dtype in use, or, on a
CPU (which has no published figure that means much), a large float32 matmul timed on the spot:
the best the machine does at the very operation that dominates the model.
"""

from __future__ import annotations

import os
import time
from statistics import median

import torch
from torch import nn

# Dense (not 2:4 sparse) tensor-core peaks, TFLOP/s, from NVIDIA's data sheets: (bfloat16, tf32).
GPU_PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (989.4, 494.7),
    "H100 NVL": (835.0, 417.5),
    "H100 PCIe": (756.0, 378.0),
    "H100": (989.4, 494.7),  # SXM
    "A100": (312.0, 156.0),
    "L40S": (362.0, 183.0),
    "L4": (121.0, 60.0),
    "A10G": (70.0, 35.0),
    "A10": (125.0, 62.5),
    "RTX 4090": (165.2, 82.6),
    "RTX 3090": (71.0, 35.6),
}
PEAK_ENV = "ATTNLAB_PEAK_TFLOPS"


def gpu_peak_flops(device: torch.device | str, dtype: str = "bfloat16") -> float | None:
    """Published dense peak FLOP/s of a CUDA device for ``dtype`` (float32 runs on TF32 cores).

    ``ATTNLAB_PEAK_TFLOPS`` overrides the table (for GPUs it does not know). None when unknown or
    not a GPU.
    """
    if os.environ.get(PEAK_ENV):
        return float(os.environ[PEAK_ENV]) * 1e12
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, tf32) in GPU_PEAK_TFLOPS.items():  # longer, more specific names come first
        if key in name:
            return (bf16 if dtype == "bfloat16" else tf32) * 1e12
    return None


def linear_weight_count(model: nn.Module) -> int:
    """Weights that are multiplied (every ``nn.Linear`` weight, a tied one once)."""
    seen: set[int] = set()
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            total += module.weight.numel()
    return total


def transformer_flops_per_token(matmul_params: int, n_layer: int, context_length: int, width: int) -> float:
    """``6 N + 12 L T d``: training FLOPs per token (see the module docstring)."""
    return 6.0 * matmul_params + 12.0 * n_layer * context_length * width


def model_flops_per_token(model: nn.Module, context_length: int | None = None) -> float | None:
    """Training FLOPs per token of ``model``, if it says (``flops_per_token``), else None."""
    fn = getattr(model, "flops_per_token", None)
    if fn is None:
        return None
    return float(fn(context_length) if context_length else fn())


def mfu(tokens_per_sec: float, flops_per_token: float, peak_flops: float) -> float:
    """Fraction of ``peak_flops`` that ``tokens_per_sec`` tokens of ``flops_per_token`` each use."""
    return tokens_per_sec * flops_per_token / peak_flops


def measure_matmul_flops(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                         n: int | None = None, repeats: int = 5) -> dict[str, float]:
    """Time ``n x n @ n x n`` products; returns ``{"n", "median", "best"}`` in FLOP/s (2 n^3 per product).

    The median of ``repeats`` timings is the figure to quote on a shared machine; ``best`` shows
    how far the machine gets when nothing else runs.
    """
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    inner = 10 if device.type == "cuda" else 1
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        _sync(device)
        if i:  # the first product warms up caches and kernels
            times.append((time.perf_counter() - start) / inner)
    flops = 2.0 * n**3
    return {"n": float(n), "median": flops / median(times), "best": flops / min(times)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
