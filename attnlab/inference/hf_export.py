"""A run as a Hugging Face GPT-2 folder that ``transformers`` generates from, offline; and back.

:func:`export_run` writes the model (:mod:`attnlab.inference.hf_gpt2`: ``config.json`` +
``model.safetensors``) and the run's tokenizer (:mod:`attnlab.data.hf_tokenizer`: ``tokenizer.json``
+ ``tokenizer_config.json`` + ``special_tokens_map.json``), so that::

    from transformers import pipeline
    pipeline("text-generation", model=DIR)("Friends, ", max_new_tokens=50, do_sample=False)

continues the prompt with the same greedy tokens as ``attnlab generate RUN --temperature 0``.
Only a GPT with GPT-2's architecture converts; every other run is refused before its weights are
read, with the reason and, where it helps, the preset to train instead.

:func:`import_folder` reads a Hugging Face GPT-2 folder (e.g. downloaded GPT-2 weights) into an
attnlab model folder, with its tokenizer when attnlab can read it.
"""

from __future__ import annotations

from pathlib import Path

from attnlab.errors import AttnlabError

_REFUSED_KINDS = {
    "rnn_lm": "a recurrent (RNN) language model",
    "lstm_lm": "a recurrent (LSTM) language model",
    "gru_lm": "a recurrent (GRU) language model",
    "seq2seq": "a translation run (an RNN encoder-decoder)",
    "transformer": "a translation run (the 2017 encoder-decoder Transformer)",
    "encoder": "an encoder-only Transformer (a masked-token model, like BERT)",
}


def refusal_for_kind(model_type: str, where: str | Path) -> str:
    """Why a saved ``model_type`` other than ``gpt`` has no GPT-2 folder, and what to do instead."""
    from attnlab.inference.hf_gpt2 import convertible_presets

    what = _REFUSED_KINDS.get(model_type, f"a {model_type!r} model")
    message = (f"{where} holds {what}; the Hugging Face GPT-2 format holds decoder-only Transformer "
               "language models, so only GPT runs convert. ")
    if model_type in ("seq2seq", "transformer"):
        message += "Use 'attnlab translate' with this run. "
    presets = convertible_presets()
    return message + (f"To get a model that converts, train a GPT, e.g. 'attnlab train gpt --preset gpt-jc' "
                      f"(the presets that convert: {', '.join(presets)})")


def export_run(src: str | Path, dst: str | Path) -> str:
    """Write the GPT in run folder ``src`` and its tokenizer to ``dst`` (Hugging Face GPT-2 layout).

    Returns a short description of what was written, for the command line.
    """
    from attnlab.checkpoint import read_model_config
    from attnlab.data.hf_tokenizer import save_hf_tokenizer
    from attnlab.data.tokenizers import load_tokenizer
    from attnlab.inference.hf_gpt2 import gpt2_refusal, to_hf
    from attnlab.models.registry import load_model

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise AttnlabError(f"{src} is not a run folder (no such directory); see 'attnlab runs'")
    model_type, _ = read_model_config(src)
    if model_type != "gpt":
        raise AttnlabError(refusal_for_kind(model_type, src))
    model = load_model(src)
    refusal = gpt2_refusal(model.config)
    if refusal:
        raise AttnlabError(f"{src}: {refusal}")
    tokenizer = load_tokenizer(src) if (src / "tokenizer.json").is_file() else None
    if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
        raise AttnlabError(f"{src}: its tokenizer has {tokenizer.vocab_size} tokens but the model only "
                           f"{model.config.vocab_size}; the run folder is inconsistent")
    to_hf(model, dst)
    size = f"{model.parameter_count() / 1e6:.2f}M parameters"
    if tokenizer is None:
        return f"{size}; no tokenizer in {src}, so only the model was written"
    save_hf_tokenizer(tokenizer, dst, model_max_length=model.config.context_length)
    return (f"{size}, {tokenizer.kind} tokenizer; transformers generates at most "
            f"{model.config.context_length} tokens in all (prompt + new), the model's context")


def import_folder(src: str | Path, dst: str | Path) -> str:
    """Read the Hugging Face GPT-2 folder ``src`` into an attnlab model folder ``dst``."""
    from attnlab.checkpoint import save_model
    from attnlab.data.hf_tokenizer import import_hf_tokenizer
    from attnlab.inference.hf_gpt2 import from_hf

    model = from_hf(src)
    save_model(model, dst)
    tokenizer = import_hf_tokenizer(src, dst)
    size = f"{model.parameter_count() / 1e6:.2f}M parameters"
    if tokenizer is not None:
        return f"{size}, {tokenizer.kind} tokenizer"
    if (Path(src) / "tokenizer.json").is_file():
        return f"{size}; its tokenizer.json is not a kind attnlab reads (only BPE), so it was left out"
    return size
