"""attnlab: every model in the history of attention, built from scratch and fast.

The public API is imported lazily, so that ``import attnlab`` and ``attnlab --help`` stay quick:
``from attnlab import GPT, GPTConfig`` imports PyTorch only when it is asked for.
"""

from importlib import import_module
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.version import __version__

_LAZY = {
    "GPT": "attnlab.models.gpt",
    "GPTConfig": "attnlab.models.gpt",
    "Trainer": "attnlab.training.trainer",
    "Eliza": "attnlab.eliza",
    "Transformer": "attnlab.models.transformer",
    "TransformerConfig": "attnlab.models.transformer",
    "EncoderLM": "attnlab.models.encoder",
    "EncoderConfig": "attnlab.models.encoder",
    "RNNLM": "attnlab.models.recurrent",
    "LSTMLM": "attnlab.models.recurrent",
    "GRULM": "attnlab.models.recurrent",
    "Seq2Seq": "attnlab.models.seq2seq",
    "Seq2SeqConfig": "attnlab.models.seq2seq",
    "load_run": "attnlab.api",
    "train": "attnlab.api",
    "RunHandle": "attnlab.api",
    "load_corpus": "attnlab.data.corpora",
    "TrainConfig": "attnlab.training.trainer",
}

__all__ = ["AttnlabError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")
