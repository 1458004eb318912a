"""attnlab.data: corpora, tokenizers and translation tasks (text -> ids -> batches).

Names are imported lazily so that ``import attnlab.data`` stays quick (no PyTorch until asked):

- corpora: :func:`list_corpora`, :func:`load_corpus`, :func:`split_train_val`
- tokenizers: :class:`Tokenizer`, :class:`CharTokenizer`, :class:`BPETokenizer`,
  :class:`WordTokenizer`, :func:`make_tokenizer`, :func:`load_tokenizer`, ``SEQ2SEQ_SPECIALS``
- tasks: :class:`TranslationData`, :func:`load_task`, :func:`list_tasks`, :func:`encode_pairs`
- prepared token shards (corpora bigger than memory; written by
  :func:`attnlab.data.prepare.prepare`): :func:`open_prepared`,
  :class:`TokenShards`, :func:`load_lm_data` / :class:`LMData` (what a language-model recipe calls)
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "list_corpora": "corpora",
    "load_corpus": "corpora",
    "split_train_val": "corpora",
    "markdown_play_to_text": "corpora",
    "Tokenizer": "tokenizers",
    "CharTokenizer": "tokenizers",
    "BPETokenizer": "tokenizers",
    "WordTokenizer": "tokenizers",
    "make_tokenizer": "tokenizers",
    "load_tokenizer": "tokenizers",
    "tokenizer_from_dict": "tokenizers",
    "SEQ2SEQ_SPECIALS": "tokenizers",
    "TranslationData": "tasks",
    "load_task": "tasks",
    "list_tasks": "tasks",
    "encode_pairs": "tasks",
    "open_prepared": "shards",
    "TokenShards": "shards",
    "load_lm_data": "lm_data",
    "LMData": "lm_data",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"attnlab.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'attnlab.data' has no attribute {name!r}")
