"""Will it fit? The memory a model needs, estimated from its config before anything is allocated.

A tampered ``config.json`` (``n_embd=10**6``, ``vocab_size=10**9``) or a ``--set`` typo
(``context_length=10**9``, ``--batch-size 10**7``) must be one clear :class:`AttnlabError`, not
minutes of swapping, an out-of-memory kill or a PyTorch allocator traceback. Every place that builds
a model checks here first: :func:`attnlab.checkpoint.load_model_as` (generate, chat, attention, fill,
translate, evaluate, convert), the Hugging Face import (:mod:`attnlab.models.hf_gpt2`) and training
(:func:`attnlab.training.session.build` declares the run with :func:`planned_training`; the recipe's
config is checked the moment it is made, in :func:`attnlab.checkpoint.config_from_dict`).

Three checks, cheapest first:

1. **Absurd values** (:func:`check_config_values`): a size above ``MAX_SIZE`` (2**31 - 1), a context
   above ``MAX_CONTEXT`` (2**20 tokens), more than ``MAX_LAYERS`` layers, a non-finite number.
2. **Parameters**, counted exactly by building the model on PyTorch's ``meta`` device (shapes only,
   no memory): once with every layer count set to 1 and once more per layer field set to 2, then
   extrapolated linearly, so a config with 10,000 layers costs no more to count than one with 2.
3. **Bytes** (float32 throughout), compared with the memory available (:func:`available_bytes`):

   - *loading*: the weights, plus the copy read from ``model.safetensors`` before it is moved in,
     plus a key/value cache for one sequence of the full context;
   - *training*: weights + gradients + AdamW's two moments (16 bytes per parameter; Muon keeps less)
     plus activations for one micro-batch: ``micro_batch x context x (layers x per-layer floats +
     3 x vocab)`` floats, where a layer keeps about ``24 x width`` floats per token (``16 x width
     + 2 x d_ff`` where the config names its feed-forward width), plus the ``context x context``
     attention weights of every layer and head (for models with attention). It is a rough
     upper-bound-ish figure: fused attention kernels and bfloat16 keep less; it is meant to
     refuse what cannot possibly fit, not to predict the peak to the megabyte.

Field roles are read from the config's field names (every attnlab config follows them): widths
``n_embd`` / ``d_model`` / ``hidden_size`` / ``emb_dim`` / ``attn_dim``, layer counts (``*layer*``),
contexts (``context_length``, ``*_len``, ``*_length``), vocabularies (``*vocab*``), ``n_head``, ``d_ff``.

The available memory is the CPU's (``psutil`` if installed, else ``MemAvailable`` of
``/proc/meminfo``, lowered to what the cgroup still allows) or, for CUDA, the GPU's free memory. Set
``ATTNLAB_MEMORY_CHECK=off`` to skip the comparison (the absurd-value checks stay).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

MAX_SIZE = 2**31 - 1  # any size, width, vocabulary or count in a model config
MAX_CONTEXT = 2**20  # tokens of context
MAX_LAYERS = 10_000
FLOAT_BYTES = 4
LAYER_FLOATS_PER_WIDTH = 24  # activations one layer keeps per token, in units of the model width
LOGIT_COPIES = 3  # logits, their log-softmax and its gradient
ENV_SWITCH = "ATTNLAB_MEMORY_CHECK"

WIDTH_FIELDS = ("n_embd", "d_model", "hidden_size", "emb_dim", "attn_dim")
FFN_FIELDS = ("d_ff",)
HEAD_FIELDS = ("n_head",)


# --------------------------------------------------------------------------- what a config says


def _int_fields(config: Any) -> dict[str, int]:
    return {f.name: value for f in dataclasses.fields(config)
            if isinstance(value := getattr(config, f.name), int) and not isinstance(value, bool)}


def _is_context(name: str) -> bool:
    return "context" in name or name.endswith(("_len", "_length")) or name == "bptt"


def _is_layers(name: str) -> bool:
    return "layer" in name


def check_config_values(config: Any, where: str) -> None:
    """Refuse absurd values in a model config (see the module docstring), naming ``where`` and the field."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise AttnlabError(f"{where}: {f.name} is {value}; it must be a finite number")
    for name, value in _int_fields(config).items():
        if value > MAX_SIZE:
            raise AttnlabError(f"{where}: {name}={value:,} is absurdly large (at most {MAX_SIZE:,})")
        if _is_context(name) and value > MAX_CONTEXT:
            raise AttnlabError(f"{where}: {name}={value:,} tokens is absurdly long (at most {MAX_CONTEXT:,} = 2**20)")
        if _is_layers(name) and value > MAX_LAYERS:
            raise AttnlabError(f"{where}: {name}={value:,} layers is absurdly deep (at most {MAX_LAYERS:,})")


@dataclass
class Shape:
    """The sizes that drive memory, read from a config's field names."""

    width: int = 1
    ffn: int | None = None
    layers: int = 1
    context: int = 1
    vocab: int = 1
    heads: int = 0  # 0: no attention weights to keep

    @classmethod
    def of(cls, config: Any) -> Shape:
        ints = _int_fields(config)

        def largest(names: Any, default: int) -> int:
            return max((v for n, v in ints.items() if n in names), default=default)

        layers = sum(v for n, v in ints.items() if _is_layers(n)) or 1
        context = max((v for n, v in ints.items() if _is_context(n)), default=1)
        vocab = max((v for n, v in ints.items() if "vocab" in n), default=1)
        has_attention = any(n in HEAD_FIELDS for n in ints) or str(getattr(config, "attention", "none")) != "none"
        heads = largest(HEAD_FIELDS, 1) if has_attention else 0
        ffn = largest(FFN_FIELDS, 0) or None
        return cls(largest(WIDTH_FIELDS, 1), ffn, layers, context, vocab, heads)

    @property
    def layer_floats(self) -> int:
        """Activations one layer keeps per token (floats)."""
        if self.ffn is not None:
            return 16 * self.width + 2 * self.ffn
        return LAYER_FLOATS_PER_WIDTH * self.width


# --------------------------------------------------------------------------- parameters


def _meta_count(model_class: type, config: Any, what: str) -> tuple[int, int]:
    """(parameters, buffer elements) of ``model_class(config)`` built on the meta device (no memory)."""
    import torch

    try:
        with torch.device("meta"):
            model = model_class(config)
    except AttnlabError:
        raise
    except (RuntimeError, ValueError, OverflowError, MemoryError) as err:  # sizes beyond what PyTorch can index
        raise AttnlabError(f"{what} cannot be built: its sizes are too large ({type(err).__name__}: {err})"
                           ) from None
    return sum(p.numel() for p in model.parameters()), sum(b.numel() for b in model.buffers())


def count_parameters(model_class: type, config: Any, what: str = "the model") -> tuple[int, int]:
    """(parameters, buffer elements) of ``model_class(config)``, without allocating its weights.

    Counted on the meta device with every layer count at 1, and at 2 for one layer field at a time,
    then extrapolated linearly (every stack here repeats one layer shape after the first).
    """
    layer_fields = [name for name in _int_fields(config) if _is_layers(name)]
    if not layer_fields:
        return _meta_count(model_class, config, what)
    base_values = {name: 1 for name in layer_fields}
    base = dataclasses.replace(config, **base_values)
    params, buffers = _meta_count(model_class, base, what)
    first = (params, buffers)
    for name in layer_fields:
        extra = getattr(config, name) - 1
        if extra > 0:
            two = _meta_count(model_class, dataclasses.replace(config, **{**base_values, name: 2}), what)
            params += extra * (two[0] - first[0])
            buffers += extra * (two[1] - first[1])
    return params, buffers


# --------------------------------------------------------------------------- bytes


@dataclass
class Estimate:
    """Bytes by part (weights, gradients ...) for one purpose ("load" or "train")."""

    purpose: str
    parameters: int
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        return ", ".join(f"{name} {format_bytes(size)}" for name, size in self.parts.items() if size)


def format_bytes(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} PB"  # pragma: no cover


def format_count(n: int) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:,.2f}{unit}"
    return str(n)


def estimate_load(model_class: type, config: Any, what: str = "the model") -> Estimate:
    """Bytes to load a saved model and generate with it (see the module docstring)."""
    params, buffers = count_parameters(model_class, config, what)
    shape = Shape.of(config)
    weights = (params + buffers) * FLOAT_BYTES
    cache = 2 * shape.layers * shape.context * shape.width * FLOAT_BYTES
    return Estimate("load", params, {"weights": weights, "the copy read from disk": weights, "cache": cache})


def estimate_training(model_class: type, config: Any, batch_size: int, grad_accum: int = 1,
                      world_size: int = 1, what: str = "the model") -> Estimate:
    """Bytes to train ``model_class(config)`` with this batch (see the module docstring)."""
    params, buffers = count_parameters(model_class, config, what)
    shape = Shape.of(config)
    micro = max(1, math.ceil(batch_size / max(1, grad_accum * world_size)))
    tokens = micro * shape.context
    activations = tokens * (shape.layers * shape.layer_floats + LOGIT_COPIES * shape.vocab) * FLOAT_BYTES
    attention = micro * shape.heads * shape.layers * shape.context ** 2 * FLOAT_BYTES
    return Estimate("train", params, {
        "weights": (params + buffers) * FLOAT_BYTES, "gradients": params * FLOAT_BYTES,
        "optimizer state": 2 * params * FLOAT_BYTES, "activations": activations, "attention weights": attention,
    })


# --------------------------------------------------------------------------- what is available


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """What this process's cgroup still allows (v2, else v1), or None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and limit < 2**60:
            return max(0, limit - (usage or 0))
    return None


def host_available_bytes() -> int | None:
    """Memory this process could still get on the host, or None where the system does not say."""
    found: int | None = None
    try:
        import psutil  # type: ignore[import-not-found]

        found = int(psutil.virtual_memory().available)
    except ImportError:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            found = None
    if found is None:
        try:
            found = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # total memory: a last resort
        except (ValueError, OSError, AttributeError):
            found = None
    room = _cgroup_room()
    if room is not None:
        found = room if found is None else min(found, room)
    return found


def available_bytes(device: Any = "cpu") -> int | None:
    """Free memory on ``device`` (a name or ``torch.device``): the GPU's for CUDA, else the host's."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    return host_available_bytes()


def checking_enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "on").strip().lower() not in ("off", "0", "false", "no")


def require_fits(estimate: Estimate, device: Any, what: str) -> None:
    """Raise :class:`AttnlabError` if ``estimate`` is more than the memory available on ``device``."""
    if not checking_enabled():
        return
    free = available_bytes(device)
    if free is None or estimate.total <= free:
        return
    doing = "load" if estimate.purpose == "load" else "train"
    where = f"{device} memory" if str(device) != "cpu" else "memory"
    raise AttnlabError(
        f"{what} needs about {format_bytes(estimate.total)} to {doing} ({format_count(estimate.parameters)} "
        f"parameters; {estimate.describe()}), but only {format_bytes(free)} of {where} is available: "
        f"it cannot fit. Use a smaller model{', batch or context' if doing == 'train' else ''} "
        f"(or set {ENV_SWITCH}=off to try anyway)"
    )


# --------------------------------------------------------------------------- the checks callers make


def check_load(model_class: type, config: Any, what: str, device: Any = "cpu",
               weights_file: str | Path | None = None) -> Estimate:
    """Before ``model_class(config)`` is built from a saved folder: absurd values, then bytes.

    ``weights_file``: the file the weights will be read from; its size replaces the estimate of the copy
    read from disk (a file far larger than its config says is refused before it is read).
    """
    check_config_values(config, what)
    estimate = estimate_load(model_class, config, what)
    if weights_file is not None and Path(weights_file).is_file():
        estimate.parts["the copy read from disk"] = Path(weights_file).stat().st_size
    require_fits(estimate, "cpu", what)  # the model is built, and the weights read, on the CPU
    if str(device) != "cpu":
        on_device = Estimate("load", estimate.parameters,
                             {k: v for k, v in estimate.parts.items() if k != "the copy read from disk"})
        require_fits(on_device, device, what)
    return estimate


def check_training(model_class: type, config: Any, train_config: Any, what: str | None = None) -> Estimate:
    """Before a model is built for training: absurd values, then bytes on the training device."""
    from attnlab.devices import resolve_device

    what = what or f"the {getattr(model_class, 'model_type', model_class.__name__)} model"
    check_config_values(config, what)
    device = resolve_device(getattr(train_config, "device", "cpu"), int(os.environ.get("LOCAL_RANK", "0") or 0))
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    estimate = estimate_training(model_class, config, getattr(train_config, "batch_size", 1),
                                 getattr(train_config, "grad_accum", 1) or 1, world, what)
    require_fits(estimate, device, what)
    return estimate


_PLANNED: contextvars.ContextVar[tuple[type, Any] | None] = contextvars.ContextVar("attnlab_planned_training",
                                                                                     default=None)


@contextlib.contextmanager
def planned_training(model_class: type, train_config: Any) -> Iterator[None]:
    """While a recipe builds a run's model: its config is checked (:func:`check_planned`) for training
    with ``train_config`` (batch, accumulation, device) the moment it is made, before the model is."""
    token = _PLANNED.set((model_class, train_config))
    try:
        yield
    finally:
        _PLANNED.reset(token)


def check_planned(config: Any) -> None:
    """Check a freshly made model config against the training declared by :func:`planned_training`
    (nothing happens outside one, or for a config of another model class)."""
    planned = _PLANNED.get()
    if planned is None:
        return
    model_class, train_config = planned
    if type(config) is getattr(model_class, "config_class", None):
        check_training(model_class, config, train_config)
