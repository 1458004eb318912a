"""Attention weights out of any trained model, in the one shape every picture understands.

Each model family gives its weights in its own way (a GPT returns a list of ``(B, H, T, T)``
tensors, an RNN encoder-decoder records one alignment row per generated word, a Transformer has
encoder, decoder and cross attention). An *extractor* turns a run and a text into a
:class:`ModelAttention`: one :class:`AttentionMaps` per kind of attention, each an array

    weights[layer, head, i, j] = softmax_j(q_i . k_j / sqrt(d_head) + mask_ij)

so that row ``i`` (the query token, "looking") sums to 1 over the columns ``j`` (the key tokens,
"looked at"). :data:`EXTRACTORS` maps a ``model_type`` to its extractor; add a family with
:func:`register_extractor`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnlab.errors import AttnlabError


def display_token(token: str) -> str:
    """A readable axis label: whitespace made visible, words without their leading space.

    The one token-label helper of attnlab: every attention picture (heat maps, the HTML viewer,
    the translation alignment plot of :mod:`attnlab.models.seq2seq`) labels its tokens with it.

    ``" "`` -> ``"␣"``, ``"\\n"`` -> ``"\\\\n"``, ``" the"`` -> ``"the"``.
    """
    if token.strip():
        return token.strip().replace("\n", "\\n").replace("\t", "\\t")
    visible = token.replace(" ", "\u2423").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return visible or "\u2205"


@dataclass
class AttentionMaps:
    """Every layer and head of one kind of attention (self, encoder, decoder, cross, alignment)."""

    name: str  # short id, used for tabs and --part: "self", "encoder", "decoder", "cross", "alignment"
    title: str  # what it is, in words: "causal self-attention"
    queries: list[str]  # row labels: the tokens that look
    keys: list[str]  # column labels: the tokens looked at
    weights: np.ndarray  # (layers, heads, len(queries), len(keys)); each row sums to 1
    causal: bool = False  # True: query i may only see keys 0..i (the rest is masked, not just small)
    query_axis: str = "query (looking)"
    key_axis: str = "key (looked at)"
    layer_ids: list[int] = field(default_factory=list)  # the model's numbering of weights[l]
    head_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.float32)
        if self.weights.ndim != 4:
            raise ValueError(f"attention weights must be (layers, heads, queries, keys), "
                             f"got {self.weights.shape}")
        if self.weights.shape[2:] != (len(self.queries), len(self.keys)):
            raise ValueError(f"weights {self.weights.shape} do not match {len(self.queries)} query and "
                             f"{len(self.keys)} key labels")
        if not self.layer_ids:
            self.layer_ids = list(range(self.weights.shape[0]))
        if not self.head_ids:
            self.head_ids = list(range(self.weights.shape[1]))

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    def select(self, layer: int | None = None, head: int | None = None) -> AttentionMaps:
        """Only ``layer`` and/or ``head`` (the model's numbering, from 0); None keeps them all."""
        layers = _pick(layer, self.layer_ids, "layer", self.title)
        heads = _pick(head, self.head_ids, "head", self.title)
        weights = self.weights[layers][:, heads]
        return dataclasses.replace(self, weights=weights, layer_ids=[self.layer_ids[i] for i in layers],
                                   head_ids=[self.head_ids[i] for i in heads])


def _pick(wanted: int | None, ids: list[int], what: str, title: str) -> list[int]:
    if wanted is None:
        return list(range(len(ids)))
    if wanted not in ids:
        raise AttnlabError(f"--{what} {wanted} does not exist in the {title}: it has {what}s "
                           f"{ids[0]}..{ids[-1]} (counted from 0)")
    return [ids.index(wanted)]


@dataclass
class ModelAttention:
    """All the attention of one model on one text."""

    model_type: str
    description: str  # e.g. "GPT: 4 layers x 4 heads, char tokenizer"
    text: str
    maps: list[AttentionMaps]
    notes: list[str] = field(default_factory=list)  # things the user should know (e.g. the text was cropped)

    def select(self, layer: int | None = None, head: int | None = None,
               part: str | None = None) -> ModelAttention:
        maps = self.maps
        if part is not None:
            names = [m.name for m in maps]
            if part not in names:
                raise AttnlabError(f"--part {part!r} is not in this {self.model_type} model; choose one of "
                                   f"{', '.join(names)}")
            maps = [m for m in maps if m.name == part]
        return dataclasses.replace(self, maps=[m.select(layer, head) for m in maps])


Extractor = Callable[..., ModelAttention]  # (run, text, target=None) -> ModelAttention
EXTRACTORS: dict[str, Extractor] = {}
TAKES_TARGET = {"transformer"}  # extractors with a ``target`` argument

# model types that have no attention at all: say so instead of "not available"
NO_ATTENTION = {
    "rnn_lm": "an RNN language model",
    "lstm_lm": "an LSTM language model",
    "gru_lm": "a GRU language model",
    "eliza": "ELIZA (keyword rules)",
}


def register_extractor(model_type: str) -> Callable[[Extractor], Extractor]:
    """Decorator: ``@register_extractor("gpt")`` makes ``extract_attention`` use the function for GPT runs."""

    def add(fn: Extractor) -> Extractor:
        EXTRACTORS[model_type] = fn
        return fn

    return add


def extract_attention(run: Any, text: str, target: str | None = None) -> ModelAttention:
    """The attention of ``run.model`` (an ``attnlab.runs.Run``) reading ``text``.

    ``target``: for encoder-decoder models, the output to force (teacher forcing) instead of the
    model's own greedy translation.
    """
    model_type = getattr(run.model, "model_type", type(run.model).__name__)
    if not text:
        raise AttnlabError("--text is empty: give the text whose attention you want to see")
    if model_type in NO_ATTENTION:
        raise AttnlabError(f"{run.path} holds {NO_ATTENTION[model_type]}, which has no attention to draw; "
                           "use a gpt, bahdanau or transformer run")
    if model_type not in EXTRACTORS:
        raise AttnlabError(f"{run.path} holds a {model_type!r} model; attention pictures are drawn for "
                           f"{', '.join(sorted(EXTRACTORS))} runs")
    if target is not None and model_type not in TAKES_TARGET:
        raise AttnlabError(f"--target is for encoder-decoder (transformer) runs; a {model_type} model "
                           "only reads --text")
    extractor = EXTRACTORS[model_type]
    return extractor(run, text, target) if target is not None else extractor(run, text)


def _device(model: Any) -> Any:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - every learned model has parameters
        return "cpu"


def crop(ids: Sequence[int], limit: int, what: str, notes: list[str]) -> list[int]:
    """Keep the first ``limit`` ids and leave a note when the text was longer."""
    ids = list(ids)
    if len(ids) > limit:
        notes.append(f"the {what} is {len(ids)} tokens but the model's context holds {limit}: "
                     f"showing the first {limit} tokens only")
        ids = ids[:limit]
    return ids


# ------------------------------------------------------------------------------------------------ GPT


@register_extractor("gpt")
def gpt_attention(run: Any, text: str) -> ModelAttention:
    """Causal self-attention of every layer and head of a GPT (``GPT.attention_maps``)."""
    import torch

    model, tokenizer = run.model, run.tokenizer
    notes: list[str] = []
    ids = tokenizer.encode(text)
    if not ids:
        raise AttnlabError(f"{text!r} encodes to no tokens at all; give some text the tokenizer knows")
    ids = crop(ids, model.config.context_length, "text", notes)
    idx = torch.tensor([ids], dtype=torch.long, device=_device(model))
    maps = model.attention_maps(idx)
    weights = torch.stack([m[0] for m in maps]).float().cpu().numpy()
    labels = [display_token(t) for t in tokenizer.tokens(ids)]
    c = model.config
    kind = getattr(tokenizer, "kind", "")
    description = f"GPT: {c.n_layer} layers x {c.n_head} heads, {len(ids)} {kind} tokens".replace("  ", " ")
    return ModelAttention("gpt", description, text, [
        AttentionMaps("self", "causal self-attention", labels, labels, weights, causal=True)], notes)


# ------------------------------------------------------------------------------------------------ seq2seq


@register_extractor("seq2seq")
def seq2seq_attention(run: Any, text: str) -> ModelAttention:
    """Bahdanau alignment of an RNN encoder-decoder: greedy-translate ``text``, record alpha_ij.

    One layer, one head: ``weights[0, 0, i, j]`` is how much target word ``i`` looked at source word ``j``.
    """
    from attnlab.inference.translate import load_translator

    translator = load_translator(run)
    if not translator.model.attends:
        raise AttnlabError(f"{run.path} is an RNN encoder-decoder without attention (attention='none'), "
                           "so there is no alignment to draw; use a 'attnlab train bahdanau' run")
    src, tgt, weights = translator.alignment(text)
    weights = weights.float().cpu().numpy()[None, None]
    c = translator.model.config
    description = f"RNN encoder-decoder ({c.cell.upper()}) with Bahdanau attention: {len(tgt)} target x " \
                  f"{len(src)} source tokens"
    specials = set(getattr(translator.tgt_tokenizer, "specials", ()))
    notes = [f"greedy translation: {''.join(t for t in tgt if t not in specials).strip()}"]
    return ModelAttention("seq2seq", description, text, [
        AttentionMaps("alignment", "Bahdanau alignment (target x source)", [display_token(t) for t in tgt],
                      [display_token(t) for t in src], weights, query_axis="target (output) token",
                      key_axis="source (input) token")], notes)


# ------------------------------------------------------------------------------------------------ transformer


@register_extractor("transformer")
def transformer_attention(run: Any, text: str, target: str | None = None) -> ModelAttention:
    """Encoder self-, decoder self- and cross-attention of the 2017 encoder-decoder.

    ``run``: an ``attnlab.runs.Run``, a run folder or an :class:`attnlab.inference.translate.Translator`.
    The decoder reads ``<bos>`` + the target: the model's own greedy translation of ``text``, or
    ``target`` when given (teacher forcing). Decoder rows are the decoder's inputs.
    """
    import torch

    from attnlab.inference.search import decode
    from attnlab.inference.translate import load_translator

    translator = load_translator(run)
    model, src_tok, tgt_tok = translator.model, translator.src_tokenizer, translator.tgt_tokenizer
    if model.model_type != "transformer":
        raise AttnlabError(f"attention maps per layer and head need a transformer run, not {model.model_type!r}")
    c = model.config
    notes: list[str] = []
    ids = src_tok.encode(text)
    if not ids:
        raise AttnlabError(f"{text!r} encodes to no source tokens; give some text the tokenizer knows")
    ids = crop(ids, c.context_length, "source text", notes)
    device = _device(model)
    src = torch.tensor([ids], dtype=torch.long, device=device)
    mask = torch.ones_like(src, dtype=torch.bool)
    if target is None:
        (row,) = decode(model, src, mask).sequences()
        row = row[: c.context_length - 1]  # room for <bos>
        notes.append(f"greedy translation: {tgt_tok.decode(row)}")
    else:
        row = tgt_tok.encode(target)
        row = crop(row, c.context_length - 1, "target text", notes)
    tgt_in = torch.tensor([[c.bos_id, *row]], dtype=torch.long, device=device)
    maps = model.attention_maps(src, mask, tgt_in)
    stack = {name: torch.stack([m[0] for m in maps[name]]).float().cpu().numpy() for name in maps}
    source = [display_token(t) for t in src_tok.tokens(ids)]
    decoder_in = [display_token(t) for t in tgt_tok.tokens([c.bos_id, *row])]
    description = (f"Transformer encoder-decoder: {c.n_encoder_layers} encoder + {c.n_decoder_layers} "
                   f"decoder layers x {c.n_head} heads; {len(source)} source, "
                   f"{len(decoder_in)} decoder tokens")
    return ModelAttention("transformer", description, text, [
        AttentionMaps("encoder", "encoder self-attention", source, source, stack["encoder"],
                      query_axis="source (looking)", key_axis="source (looked at)"),
        AttentionMaps("decoder", "decoder self-attention (causal)", decoder_in, decoder_in, stack["decoder"],
                      causal=True, query_axis="decoder input (looking)",
                      key_axis="decoder input (looked at)"),
        AttentionMaps("cross", "cross-attention (decoder -> encoder)", decoder_in, source, stack["cross"],
                      query_axis="decoder input (looking)", key_axis="source (looked at)"),
    ], notes)


# ------------------------------------------------------------------------------------------------ encoder


@register_extractor("encoder")
def encoder_attention(run: Any, text: str) -> ModelAttention:
    """Bidirectional self-attention of an encoder-only (BERT-like) model; ``[MASK]`` in the text is kept."""
    import torch

    from attnlab.inference.fill import MASK, encode_with_masks

    model, tokenizer = run.model, run.tokenizer
    notes: list[str] = []
    ids = encode_with_masks(tokenizer, text)[0] if MASK in text else tokenizer.encode(text)
    if not ids:
        raise AttnlabError(f"{text!r} encodes to no tokens at all; give some text the tokenizer knows")
    ids = crop(ids, model.config.context_length, "text", notes)
    maps = model.attention_maps(torch.tensor([ids], dtype=torch.long, device=_device(model)))
    weights = torch.stack([m[0] for m in maps]).float().cpu().numpy()
    labels = [display_token(t) for t in tokenizer.tokens(ids)]
    c = model.config
    description = f"encoder-only Transformer: {c.n_layer} layers x {c.n_head} heads, {len(ids)} tokens"
    return ModelAttention("encoder", description, text, [
        AttentionMaps("self", "bidirectional self-attention", labels, labels, weights)], notes)
