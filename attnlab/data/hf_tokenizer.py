"""attnlab tokenizers as Hugging Face tokenizer folders, and back.

A Hugging Face model folder carries its tokenizer as three small JSON files that
``transformers.AutoTokenizer.from_pretrained`` reads (as a ``PreTrainedTokenizerFast``):

- ``tokenizer.json``: the ``tokenizers`` library's own description (model, pre-tokenizer, decoder);
- ``tokenizer_config.json``: the class to build, the context length, the special tokens;
- ``special_tokens_map.json``: which added tokens play the roles of ``<pad>``, ``<eos>``, ...

The two language-model tokenizers map over exactly:

- ``bpe`` already *is* a Hugging Face byte-level BPE; its ``tokenizer.json`` is written as it is.
- ``char`` becomes a BPE model with no merges whose vocabulary is the characters (specials first,
  then the characters in sorted order: the ids are attnlab's own), no pre-tokenizer, and a ``Fuse``
  decoder that joins the characters back without spaces. Every character of the training text
  encodes to the same id as in attnlab and ``decode(encode(text)) == text``; a character the run
  never saw is dropped, as ``attnlab chat`` drops it (``attnlab generate`` refuses it instead), or
  becomes ``<unk>`` when the tokenizer has one. Special tokens are added tokens, so (unlike in
  attnlab) the text ``"<eos>"`` encodes to the one special id.

``clean_up_tokenization_spaces`` is off: ``transformers`` would otherwise turn ``" ,"`` into
``","`` when decoding, and the text would no longer round-trip.

Reading back (:func:`import_hf_tokenizer`, for ``attnlab convert --to attnlab``): a folder written
here becomes a char tokenizer again; any other Hugging Face BPE ``tokenizer.json`` (GPT-2's, say)
is kept as a bpe tokenizer; other kinds (WordPiece, Unigram) are not read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attnlab.data.tokenizers import BOS, EOS, PAD, UNK, BPETokenizer, CharTokenizer, Tokenizer
from attnlab.errors import AttnlabError

HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_ROLES = {PAD: "pad_token", BOS: "bos_token", EOS: "eos_token", UNK: "unk_token"}


def char_tokenizer_json(tokenizer: CharTokenizer) -> dict[str, Any]:
    """A ``tokenizers`` description of ``tokenizer``: BPE without merges over its characters."""
    from tokenizers import AddedToken, decoders, models
    from tokenizers import Tokenizer as HFTokenizer

    vocab = {token: i for i, token in enumerate(tokenizer.specials)}
    vocab.update({c: i + len(tokenizer.specials) for i, c in enumerate(tokenizer.chars)})
    unk = UNK if UNK in tokenizer.specials else None
    hf = HFTokenizer(models.BPE(vocab=vocab, merges=[], unk_token=unk))
    hf.decoder = decoders.Fuse()
    if tokenizer.specials:
        hf.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in tokenizer.specials])
    return json.loads(hf.to_str())


def hf_tokenizer_json(tokenizer: Tokenizer) -> dict[str, Any]:
    """The ``tokenizer.json`` of a char or bpe tokenizer; other kinds are refused."""
    if isinstance(tokenizer, BPETokenizer):
        return tokenizer.to_dict()
    if isinstance(tokenizer, CharTokenizer):
        return char_tokenizer_json(tokenizer)
    raise AttnlabError(f"a {tokenizer.kind} tokenizer has no Hugging Face equivalent here; "
                       "only char and bpe tokenizers (those of language-model runs) convert")


def save_hf_tokenizer(tokenizer: Tokenizer, directory: str | Path, model_max_length: int) -> list[str]:
    """Write ``tokenizer`` into ``directory`` as a Hugging Face tokenizer; return the file names."""
    from attnlab.io import write_json_atomic

    directory = Path(directory)
    specials = {_ROLES[s]: s for s in tokenizer.specials if s in _ROLES}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": int(model_max_length),
        "clean_up_tokenization_spaces": False,
        "attnlab_tokenizer_kind": tokenizer.kind,
        **specials,
    }
    write_json_atomic(directory / "tokenizer.json", hf_tokenizer_json(tokenizer))
    write_json_atomic(directory / "tokenizer_config.json", config)
    write_json_atomic(directory / "special_tokens_map.json", specials)
    return list(HF_TOKENIZER_FILES)


def is_char_layout(data: Any) -> bool:
    """Whether a ``tokenizer.json`` is a char tokenizer as :func:`char_tokenizer_json` writes it."""
    if not isinstance(data, dict):
        return False
    model, decoder = data.get("model"), data.get("decoder")
    if not (isinstance(model, dict) and model.get("type") == "BPE" and isinstance(decoder, dict)):
        return False
    vocab = model.get("vocab")
    specials = {t.get("content") for t in data.get("added_tokens") or [] if isinstance(t, dict)}
    return (decoder.get("type") == "Fuse" and not model.get("merges") and data.get("pre_tokenizer") is None
            and isinstance(vocab, dict) and bool(vocab)
            and all(isinstance(t, str) and (len(t) == 1 or t in specials) for t in vocab))


def tokenizer_from_hf_json(data: Any) -> Tokenizer | None:
    """An attnlab tokenizer from a Hugging Face ``tokenizer.json``; None if attnlab cannot read the kind."""
    if is_char_layout(data):
        added = {t.get("content") for t in data.get("added_tokens") or [] if isinstance(t, dict)}
        order = [t for _, t in sorted((i, t) for t, i in data["model"]["vocab"].items())]
        specials = [t for t in order if t in added]
        chars = [t for t in order if t not in added]
        if order == specials + sorted(chars):  # attnlab's id order: specials, then sorted characters
            return CharTokenizer(chars, specials)
    if isinstance(data, dict) and isinstance(data.get("model"), dict) and data["model"].get("type") == "BPE":
        try:
            return BPETokenizer.from_dict(data)
        except Exception as err:  # rejected by `tokenizers`
            raise AttnlabError(f"the Hugging Face tokenizer.json is corrupt ({type(err).__name__}: {err})") from None
    return None


def import_hf_tokenizer(src: str | Path, dst: str | Path) -> Tokenizer | None:
    """Read ``src/tokenizer.json`` (a Hugging Face folder) and save it as attnlab's ``dst/tokenizer.json``.

    Returns the tokenizer, or None when there is none or it is of a kind attnlab does not read.
    """
    from attnlab.io import read_json

    file = Path(src) / "tokenizer.json"
    if not file.is_file():
        return None
    tokenizer = tokenizer_from_hf_json(read_json(file, what="Hugging Face tokenizer"))
    if tokenizer is not None:
        Path(dst).mkdir(parents=True, exist_ok=True)
        tokenizer.save(Path(dst) / "tokenizer.json")
    return tokenizer
