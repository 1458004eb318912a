"""Text in, text out for every translation model: an encoder-decoder and its two tokenizers.

One :class:`Translator` serves the RNN encoder-decoders (``attnlab train bahdanau | seq2seq-*``) and
the Transformer (``attnlab train transformer``): both decode through the same search protocol
(:func:`attnlab.inference.search.decode`), so translating is

    ids = src_tokenizer(texts)  ->  decode(model, ids, beam)  ->  tgt_tokenizer.decode(best)

and an alignment is the attention recorded along the chosen hypothesis: row ``i`` is where the
decoder looked while writing target token ``i`` (Bahdanau's ``alpha_i``; for the Transformer the
last decoder layer's cross-attention, averaged over heads). Per-layer, per-head maps are
:mod:`attnlab.viz.extract`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from attnlab.data.tasks import pad_rows
from attnlab.errors import AttnlabError
from attnlab.inference.search import DecodeResult, decode

SRC_TOKENIZER_FILE = "src_tokenizer.json"
TGT_TOKENIZER_FILE = "tgt_tokenizer.json"
TRANSLATION_MODELS = ("seq2seq", "transformer")  # model types that translate


@dataclass
class Translator:
    """A trained encoder-decoder with its source and target tokenizers: text in, text out."""

    model: Any
    src_tokenizer: Any
    tgt_tokenizer: Any

    def encode_sources(self, texts: Sequence[str]) -> tuple[Tensor, Tensor, list[list[int]]]:
        """Texts -> padded ids (B, S), mask (B, S), and the id lists (unknown pieces become ``<unk>``)."""
        pad = self.model.config.pad_id
        ids = [self.src_tokenizer.encode(text) for text in texts]
        for text, row in zip(texts, ids):
            if not row:
                raise AttnlabError(f"nothing to translate in {text!r}: the source text is empty")
        src, mask = pad_rows(ids, pad)
        device = next(self.model.parameters()).device
        return src.to(device), mask.to(device), ids

    def decode(self, texts: Sequence[str], beam: int = 1, max_len: int | None = None,
               length_penalty: float = 1.0, **options: Any) -> tuple[DecodeResult, list[list[int]]]:
        """The search result for a batch of texts, and their source ids."""
        src, mask, ids = self.encode_sources(texts)
        return decode(self.model, src, mask, beam=beam, max_len=max_len, length_penalty=length_penalty,
                      **options), ids

    def translate(self, texts: str | Sequence[str], beam: int = 1, max_len: int | None = None,
                  batch_size: int = 256, length_penalty: float = 1.0) -> str | list[str]:
        """Translate one text (returns a string) or many (returns a list), in batches."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise AttnlabError(f"batch_size must be a positive integer, got {batch_size!r}")
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        out: list[str] = []
        for start in range(0, len(items), batch_size):
            result, _ = self.decode(items[start : start + batch_size], beam=beam, max_len=max_len,
                                    length_penalty=length_penalty)
            out.extend(self.tgt_tokenizer.decode(row) for row in result.sequences())
        return out[0] if single else out

    def alignment(self, text: str, beam: int = 1, max_len: int | None = None
                  ) -> tuple[list[str], list[str], Tensor]:
        """Translate ``text``: (source tokens, target tokens incl. ``<eos>``, attention weights (T, S))."""
        if not getattr(self.model, "attends", False):
            raise AttnlabError("this model has no attention (attention='none'), so there is no alignment "
                               "to draw; train 'attnlab train bahdanau' instead")
        result, ids = self.decode([text], beam=beam, max_len=max_len)
        (target,) = result.sequences(keep_eos=True)
        weights = result.recorded[0, : len(target), : len(ids[0])].detach().cpu()
        return self.src_tokenizer.tokens(ids[0]), self.tgt_tokenizer.tokens(target), weights


def load_translator(run: Any) -> Translator:
    """A :class:`Translator` from a run folder (path), an ``attnlab.runs.Run``, or a Translator.

    Any translation run: an RNN encoder-decoder (``bahdanau``, ``seq2seq-*``) or a ``transformer``.
    """
    if isinstance(run, Translator):
        return run
    if isinstance(run, (str, Path)):
        from attnlab.checkpoint import read_model_config
        from attnlab.data.tokenizers import load_tokenizer
        from attnlab.models.registry import load_model

        directory = Path(run)
        model_type, _ = read_model_config(directory)
        _require_translation_model(model_type, directory)
        from attnlab.runs import check_vocabularies

        model = load_model(directory)
        pair = {Path(name).stem: load_tokenizer(directory / name) for name in (SRC_TOKENIZER_FILE, TGT_TOKENIZER_FILE)}
        check_vocabularies(model, pair, directory)
        return Translator(model, *pair.values())
    model = getattr(run, "model", None)
    tokenizers = getattr(run, "tokenizers", None) or {}
    src_tok, tgt_tok = (tokenizers.get(Path(name).stem) for name in (SRC_TOKENIZER_FILE, TGT_TOKENIZER_FILE))
    if src_tok is None and tgt_tok is None and "tokenizer" in tokenizers:  # one shared vocabulary
        src_tok = tgt_tok = tokenizers["tokenizer"]
    if model is not None:
        _require_translation_model(getattr(model, "model_type", type(model).__name__), getattr(run, "path", ""))
        if src_tok is not None and tgt_tok is not None:
            return Translator(model, src_tok, tgt_tok)
    directory = getattr(run, "path", None)
    if directory is not None:
        if model is not None:
            raise AttnlabError(f"{directory} has no src_tokenizer.json / tgt_tokenizer.json; it is not a "
                               "complete translation run")
        return load_translator(directory)
    raise AttnlabError(f"cannot translate with {type(run).__name__}: give the folder of a translation run")


def _require_translation_model(model_type: str, where: Any) -> None:
    if model_type not in TRANSLATION_MODELS:
        raise AttnlabError(f"{where} holds a {model_type!r} model, which does not translate; use a "
                           "translation run (attnlab train bahdanau / seq2seq-gru / transformer)")


def alignment(run: Any, text: str, beam: int = 1, max_len: int | None = None
              ) -> tuple[list[str], list[str], Tensor]:
    """(source tokens, target tokens, attention weights (T, S)) for translating ``text`` with ``run``
    (a run folder, an ``attnlab.runs.Run`` or a :class:`Translator`)."""
    return load_translator(run).alignment(text, beam=beam, max_len=max_len)
