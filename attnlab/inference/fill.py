"""Filling in masked words with an encoder-only (BERT-like) model.

Every ``[MASK]`` of a text becomes the tokenizer's mask id; one forward pass gives, at each masked
position ``i``, ``P(token | the whole text) = softmax(logits_i)``; the guesses are the ``top_k``
most likely tokens, special tokens excluded.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.errors import AttnlabError

MASK = "[MASK]"


def encode_with_masks(tokenizer: Any, text: str) -> tuple[list[int], list[int]]:
    """Token ids of ``text`` with every ``[MASK]`` as the mask id; returns (ids, mask positions).

    Word tokens carry the space before them, so the space before a ``[MASK]`` belongs to the
    hidden word and is dropped from the text around it.
    """
    mask_id = tokenizer._special_id(MASK)
    if mask_id is None:
        raise AttnlabError("this run's tokenizer has no [MASK] token; train it with 'attnlab train encoder'")
    pieces = text.split(MASK)
    if len(pieces) < 2:
        raise AttnlabError(
            f"no {MASK} in {text!r}: write {MASK} where a word should be guessed, "
            f'e.g. "Friends, {MASK}, countrymen"'
        )
    ids: list[int] = []
    positions: list[int] = []
    for i, piece in enumerate(pieces):
        if i < len(pieces) - 1 and tokenizer.kind == "word" and piece.endswith(" "):
            piece = piece[:-1]
        ids.extend(tokenizer.encode(piece, unknown="unk") if piece else [])
        if i < len(pieces) - 1:
            positions.append(len(ids))
            ids.append(mask_id)
    return ids, positions


@torch.no_grad()
def fill_masks(model: Any, tokenizer: Any, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each ``[MASK]`` in ``text``, the ``top_k`` most likely tokens and their probabilities."""
    if getattr(model, "model_type", None) != "encoder":
        raise AttnlabError(
            f"fill needs an encoder run ('attnlab train encoder'), not a "
            f"{getattr(model, 'model_type', type(model).__name__)!r} model"
        )
    if not isinstance(top_k, int) or top_k < 1:
        raise AttnlabError(f"--top must be a positive integer, got {top_k!r}")
    ids, positions = encode_with_masks(tokenizer, text)
    if len(ids) > model.config.context_length:
        raise AttnlabError(
            f"the text is {len(ids)} tokens long; this model reads at most {model.config.context_length}"
        )
    model.eval()
    device = next(model.parameters()).device
    logits = model(torch.tensor([ids], dtype=torch.long, device=device))[0]
    probs = torch.softmax(logits.float(), dim=-1)
    banned = [i for i in (tokenizer._special_id(s) for s in tokenizer.specials) if i is not None]
    probs[:, banned] = 0.0  # never suggest <pad>, <unk> or [MASK] itself
    out = []
    for position in positions:
        values, indices = probs[position].topk(min(top_k, probs.shape[-1]))
        out.append([(tokenizer.id_to_token(int(i)), float(v)) for v, i in zip(values, indices)])
    return out
