"""The JSON the studio's pages read: the runs and their curves, next-token logits, translations, and
the attention viewer page for a text.

``GET /api/runs`` lists every run (kind, size, steps, best validation loss, what it can do);
``GET /api/metrics?run=NAME`` its loss curve; ``POST /api/next`` the logits of the next token after a
text (the page applies temperature and top-k itself, so its bars move as the sliders do);
``POST /api/translate`` a translation; ``GET /api/viewer?run=NAME&text=...`` the self-contained
attention viewer of :mod:`attnlab.viz.html` for that text, shown in a sandboxed frame.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from attnlab.errors import AttnlabError
from attnlab.serve import validate
from attnlab.serve.registry import Registry, capabilities, count_parameters, model_type_of
from attnlab.serve.validate import ApiError

router = APIRouter(prefix="/api")
MAX_LOGITS = 512  # the page gets every logit of a small vocabulary, the likeliest 512 of a large one
MAX_VIEW_CHARS = 2_000
MAX_METRIC_ROWS = 2_000
VIEWER_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def _finite(value: Any) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


@router.get("/runs")
async def runs(request: Request) -> dict[str, Any]:
    out = []
    for name, info in registry_of(request).scan().items():
        path = info["path"]
        model_type = model_type_of(path)
        try:
            updated = (path / "metrics.jsonl").stat().st_mtime
        except OSError:
            updated = None
        out.append({"name": name, "kind": info["kind"], "model_type": model_type, "data": info["data"],
                    "steps": info["step"], "best_val_loss": _finite(info["best_val_loss"]),
                    "parameters": count_parameters(path), "capabilities": capabilities(model_type),
                    "updated": updated})
    return {"runs": out}


@router.get("/metrics")
async def metrics(request: Request, run: str) -> dict[str, Any]:
    from attnlab.io import read_metrics

    path = registry_of(request).path_of(run)
    rows = read_metrics(path)
    step = max(1, math.ceil(len(rows) / MAX_METRIC_ROWS))
    keep = rows[::step] if step > 1 else rows
    if step > 1 and rows and keep[-1] is not rows[-1]:
        keep.append(rows[-1])
    return {"run": run, "rows": [{k: _finite(r.get(k)) for k in ("step", "loss", "val_loss") if k in r}
                                 for r in keep]}


@router.post("/next")
async def next_token(request: Request) -> dict[str, Any]:
    body = validate.parse_body(await request.body())
    name, text = validate.model_name(body), validate.text(body, "text")
    entry = registry_of(request).get(name)
    if not hasattr(entry.run.model, "start_stream"):
        raise ApiError(f"{name!r} is a {entry.run.model.model_type} model; next-token bars are for language "
                       "models", code="model_not_supported", param="model")
    return await asyncio.to_thread(_logits, entry, text)


def _logits(entry: Any, text: str) -> dict[str, Any]:
    import torch

    from attnlab.inference.sampling import crop_prompt
    from attnlab.viz.extract import display_token

    model, tokenizer = entry.run.model, entry.run.tokenizer
    ids = tokenizer.encode(text, unknown="skip")
    if not ids:
        raise ApiError("the text has no character this model knows", param="text")
    ids, _ = crop_prompt(ids, model)
    with entry.lock, torch.no_grad():
        model.eval()
        logits, _ = model.stream_step(list(ids), model.start_stream(True))
    logits = logits.float().flatten().cpu()
    top = torch.topk(logits, min(MAX_LOGITS, logits.numel()))
    tokens = [{"id": int(i), "text": tokenizer.decode([int(i)]), "label": display_token(tokenizer.decode([int(i)])),
               "logit": round(float(v), 5)} for v, i in zip(top.values, top.indices)]
    return {"tokens": [display_token(t) for t in tokenizer.tokens(ids)], "vocab_size": int(logits.numel()),
            "next": tokens}


@router.post("/translate")
async def translate(request: Request) -> dict[str, Any]:
    body = validate.parse_body(await request.body())
    name, text = validate.model_name(body), validate.text(body, "text", limit=MAX_VIEW_CHARS)
    entry = registry_of(request).get(name)

    def work() -> str:
        with entry.lock:
            return entry.run.translate(text)

    return {"translation": await asyncio.to_thread(work)}


def known_text(run: Any, text: str) -> str:
    """``text`` without the characters a language model's tokenizer never saw (as the next-token bars
    and the chat drop them); a translation run reads unknown pieces as ``<unk>`` itself."""
    from attnlab.inference.chat import unseen_characters

    if "tokenizer" not in run.tokenizers or not hasattr(run.model, "start_stream"):
        return text
    unseen = set(unseen_characters(run.tokenizer, text))
    return "".join(c for c in text if c not in unseen) if unseen else text


@router.get("/viewer")
async def viewer(request: Request, run: str, text: str) -> HTMLResponse:
    from attnlab.viz.extract import extract_attention
    from attnlab.viz.html import attention_html

    validate.text({"text": text}, "text", limit=MAX_VIEW_CHARS)
    entry = registry_of(request).get(run)

    def work() -> str:
        with entry.lock:
            try:
                return attention_html(extract_attention(entry.run, known_text(entry.run, text)),
                                      title=f"attention: {run}")
            except AttnlabError as err:
                raise ApiError(str(err), code="no_attention") from None

    page = await asyncio.to_thread(work)
    return HTMLResponse(page, headers={"Content-Security-Policy": VIEWER_CSP})
