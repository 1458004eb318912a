"""Device names (``--device``) checked before anything is loaded or built.

Every command that takes ``--device`` goes through :func:`resolve_device` (the command line checks
the flag before the command runs; training checks it in :mod:`attnlab.training.distributed`), so a
device this machine does not have is one clear :class:`~attnlab.errors.AttnlabError` naming the
flag, never a PyTorch assertion from deep inside ``model.to(...)``.

Accepted names: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` and ``auto`` (a CUDA GPU if PyTorch sees
one, else the CPU); case and surrounding spaces do not matter.
"""

from __future__ import annotations

import re
from typing import Any

from attnlab.errors import AttnlabError

DEVICE_NAMES = "cpu, cuda, cuda:N, mps or auto"
_CUDA = re.compile(r"cuda(?::(\d{1,6}))?")


def resolve_device(name: Any, local_rank: int = 0, flag: str = "--device") -> Any:
    """The ``torch.device`` that ``name`` asks for, or :class:`AttnlabError` if this machine has none.

    ``cuda`` without an index means ``cuda:<local_rank>`` (one GPU per process under torchrun).
    """
    import torch

    text = str(name).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    found = _CUDA.fullmatch(text)
    if found:
        if not torch.cuda.is_available():
            why = "this PyTorch was built without CUDA" if torch.version.cuda is None else \
                "no GPU, or no working driver"
            raise AttnlabError(f"{flag} {name}: PyTorch sees no CUDA GPU here ({why}); use --device cpu")
        count = torch.cuda.device_count()
        index = int(found.group(1)) if found.group(1) is not None else local_rank
        if index >= count:
            raise AttnlabError(f"{flag} {name}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                               f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
        return torch.device("cuda", index)
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise AttnlabError(f"{flag} mps: Apple's MPS backend is not available on this machine; "
                               "use --device cpu")
        return torch.device("mps")
    raise AttnlabError(f"{flag} {name!r}: unknown device; use {DEVICE_NAMES}")
