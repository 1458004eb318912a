"""Conversion between attnlab's GPT and the Hugging Face GPT-2 format (``GPT2LMHeadModel`` folders).

A Hugging Face folder holds ``config.json`` (``"model_type": "gpt2"``) and ``model.safetensors``.
GPT-2 stores its linear layers as ``Conv1D`` with weights laid out ``(in, out)``, the transpose of
``nn.Linear``; the names map one to one:

    transformer.wte / wpe            <-> tok_emb / pos_emb
    transformer.h.i.ln_1 / ln_2      <-> blocks.i.norm1 / norm2
    transformer.h.i.attn.c_attn      <-> blocks.i.attn.qkv      (transposed)
    transformer.h.i.attn.c_proj      <-> blocks.i.attn.proj     (transposed)
    transformer.h.i.mlp.c_fc / c_proj <-> blocks.i.mlp.fc / proj (transposed)
    transformer.ln_f, lm_head        <-> norm_f, lm_head

Neither direction imports ``transformers``: the files are read and written directly. Only the
classic architecture has a GPT-2 equivalent; a model with RoPE, RMSNorm, QK-norm, another MLP, a
soft-cap, post-norm or an ablation is refused with a message that says which option is in the way
and names a preset that converts (:func:`gpt2_refusal`). The tokenizer is not the model's business:
see :mod:`attnlab.data.hf_tokenizer`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from attnlab.checkpoint import load_tensors, save_tensors
from attnlab.errors import AttnlabError
from attnlab.io import read_json, write_json_atomic
from attnlab.models.gpt import GPT, PRESETS, GPTConfig, preset_config

_LAYER_MAP = {  # attnlab suffix -> (HF suffix, transposed)
    "norm1.weight": ("ln_1.weight", False), "norm1.bias": ("ln_1.bias", False),
    "attn.qkv.weight": ("attn.c_attn.weight", True), "attn.qkv.bias": ("attn.c_attn.bias", False),
    "attn.proj.weight": ("attn.c_proj.weight", True), "attn.proj.bias": ("attn.c_proj.bias", False),
    "norm2.weight": ("ln_2.weight", False), "norm2.bias": ("ln_2.bias", False),
    "mlp.fc.weight": ("mlp.c_fc.weight", True), "mlp.fc.bias": ("mlp.c_fc.bias", False),
    "mlp.proj.weight": ("mlp.c_proj.weight", True), "mlp.proj.bias": ("mlp.c_proj.bias", False),
}
_TOP_MAP = {"tok_emb.weight": "transformer.wte.weight", "pos_emb.weight": "transformer.wpe.weight",
            "norm_f.weight": "transformer.ln_f.weight", "norm_f.bias": "transformer.ln_f.bias",
            "lm_head.weight": "lm_head.weight"}


def gpt2_incompatibilities(c: GPTConfig) -> list[str]:
    problems = []
    if c.pos == "rope":
        problems.append("pos='rope' (rotary embeddings; GPT-2 has learned positions)")
    elif c.pos != "learned":
        problems.append(f"pos={c.pos!r} (GPT-2 has learned positions)")
    for name, classic in (("norm", "layernorm"), ("norm_position", "pre"), ("mlp", "gelu"), ("qk_norm", False),
                          ("logit_softcap", 0.0), ("residual", True), ("ffn", True), ("bias", True)):
        if getattr(c, name) != classic:
            problems.append(f"{name}={getattr(c, name)!r} (GPT-2 has {classic!r})")
    return problems


def convertible_presets() -> list[str]:
    """The GPT presets whose architecture is GPT-2's (all but the speedrun's)."""
    return [name for name in PRESETS if not gpt2_incompatibilities(preset_config(name))]


def gpt2_refusal(c: GPTConfig) -> str | None:
    """Why a model with config ``c`` cannot become a GPT-2 folder, and what converts; None if it can."""
    problems = gpt2_incompatibilities(c)
    if not problems:
        return None
    presets = convertible_presets()
    shape = (c.n_layer, c.n_head, c.n_embd)
    configs = {n: preset_config(n) for n in presets}
    same = [n for n, p in configs.items() if (p.n_layer, p.n_head, p.n_embd) == shape]
    wide = [n for n, p in configs.items() if (p.n_head, p.n_embd) == shape[1:]]
    if same:
        hint = f"train with --preset {same[0]} (the same size with GPT-2's architecture) to get one that converts"
    elif wide:
        hint = (f"train with --preset {wide[0]} --set n_layer={c.n_layer} (the same size with GPT-2's "
                f"architecture) to get one that converts; the presets that convert are {', '.join(presets)}")
    else:
        hint = f"the presets that convert are {', '.join(presets)}"
    return ("this model has no GPT-2 equivalent, so it cannot be converted to the Hugging Face GPT-2 format: "
            + "; ".join(problems) + f". {hint[0].upper()}{hint[1:]}")


def to_hf(model: GPT, directory: str | Path) -> None:
    """Write ``model`` as a Hugging Face GPT-2 folder (``config.json`` + ``model.safetensors``)."""
    c = model.config
    refusal = gpt2_refusal(c)
    if refusal:
        raise AttnlabError(refusal)
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name in _TOP_MAP:
            out[_TOP_MAP[name]] = tensor
            continue
        _, index, suffix = name.split(".", 2)
        hf_suffix, transpose = _LAYER_MAP[suffix]
        out[f"transformer.h.{index}.{hf_suffix}"] = tensor.t() if transpose else tensor
    if c.tie_weights:
        out.pop("lm_head.weight")
    directory = Path(directory)
    save_tensors(directory / "model.safetensors", out, metadata={"format": "pt"})
    write_json_atomic(directory / "config.json", {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
        "n_positions": c.context_length, "n_ctx": c.context_length, "n_embd": c.n_embd, "n_layer": c.n_layer,
        "n_head": c.n_head, "n_inner": None, "activation_function": "gelu_new", "resid_pdrop": c.dropout,
        "embd_pdrop": c.dropout, "attn_pdrop": c.dropout if c.attn_dropout is None else c.attn_dropout,
        "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
        "tie_word_embeddings": c.tie_weights, "scale_attn_weights": True,
        "bos_token_id": 50256 if c.vocab_size > 50256 else None,
        "eos_token_id": 50256 if c.vocab_size > 50256 else None,
    })


def config_from_hf(values: dict, where: str = "the Hugging Face config") -> GPTConfig:
    """The :class:`GPTConfig` of a GPT-2 ``config.json``; every value checked (a wrong type is one clear error)."""
    if not isinstance(values, dict):
        raise AttnlabError(f"{where} is not a GPT-2 config (expected a JSON object, got {type(values).__name__})")
    try:
        return _config_from_hf(values)
    except (TypeError, ValueError, OverflowError) as err:
        raise AttnlabError(f"{where} has a value of the wrong type ({err})") from None


def _config_from_hf(values: dict) -> GPTConfig:
    if values.get("model_type") != "gpt2":
        raise AttnlabError(f"not a GPT-2 config (model_type={values.get('model_type')!r}); only GPT-2 converts")
    n_embd = values.get("n_embd", 768)
    refused = []
    if values.get("n_inner") not in (None, 4 * n_embd):
        refused.append(f"n_inner={values['n_inner']}")
    if values.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        refused.append(f"activation_function={values['activation_function']!r}")
    if values.get("scale_attn_by_inverse_layer_idx") or values.get("reorder_and_upcast_attn"):
        refused.append("scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn")
    if values.get("scale_attn_weights", True) is False:
        refused.append("scale_attn_weights=false")
    if abs(float(values.get("layer_norm_epsilon", 1e-5)) - 1e-5) > 1e-12:
        refused.append(f"layer_norm_epsilon={values['layer_norm_epsilon']}")
    if refused:
        raise AttnlabError("this GPT-2 variant is not supported: " + ", ".join(refused))
    return GPTConfig(vocab_size=values.get("vocab_size", 50257), context_length=values.get("n_positions", 1024),
                     n_layer=values.get("n_layer", 12), n_head=values.get("n_head", 12), n_embd=n_embd,
                     dropout=float(values.get("resid_pdrop", 0.0)), bias=True,
                     tie_weights=bool(values.get("tie_word_embeddings", True)))


def from_hf(directory: str | Path) -> GPT:
    """Load a Hugging Face GPT-2 folder (safetensors only: pickled ``.bin`` files are never loaded)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AttnlabError(f"{directory} is not a folder")
    from attnlab.checkpoint import MAX_CONFIG_BYTES, check_file_size, check_finite
    from attnlab.memory import check_load

    check_file_size(directory / "config.json", MAX_CONFIG_BYTES, "a model config")
    config = config_from_hf(read_json(directory / "config.json", what="Hugging Face config"),
                            where=str(directory / "config.json"))
    if not (directory / "model.safetensors").is_file():
        hint = " (it has pytorch_model.bin: attnlab never unpickles; save it with safe_serialization=True)" if (
            directory / "pytorch_model.bin").is_file() else ""
        raise AttnlabError(f"{directory} has no model.safetensors{hint}")
    check_load(GPT, config, f"the GPT-2 model in {directory / 'config.json'}",
               weights_file=directory / "model.safetensors")
    hf = load_tensors(directory / "model.safetensors", what="Hugging Face weights")
    check_finite(hf, directory / "model.safetensors")
    hf = {k.removeprefix("model."): v for k, v in hf.items()}
    if "transformer.wte.weight" not in hf and "wte.weight" in hf:  # a bare GPT2Model
        hf = {f"transformer.{k}": v for k, v in hf.items()}
    model = GPT(config)
    state = {}
    for name in model.state_dict():
        if name in _TOP_MAP:
            key, transpose = _TOP_MAP[name], False
            if name == "lm_head.weight" and key not in hf:
                key = "transformer.wte.weight"  # tied
        else:
            _, index, suffix = name.split(".", 2)
            hf_suffix, transpose = _LAYER_MAP[suffix]
            key = f"transformer.h.{index}.{hf_suffix}"
        if key not in hf:
            raise AttnlabError(f"{directory / 'model.safetensors'} lacks {key}; the file is incomplete")
        state[name] = hf[key].t().contiguous() if transpose else hf[key]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise AttnlabError(f"the weights in {directory} do not fit their config: {err}") from None
    return model.eval()
