"""The OpenAI-compatible API: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``.

The official ``openai`` client pointed at ``http://127.0.0.1:PORT/v1`` works unchanged, streaming
included (server-sent events, ``data: {...}`` then ``data: [DONE]``). Every language-model run under
the served folders is a model, named by its folder; ``eliza`` is one too (chat only).

A chat with a language model is written out as ``attnlab chat`` keeps its history: each user message
on a line of its own, each reply followed by a blank line; the model continues the text and its reply
ends at the next blank line. ``top_k`` is accepted as an extension (``extra_body={"top_k": 40}``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from attnlab.serve import validate
from attnlab.serve.generation import Generation, Result, generate
from attnlab.serve.registry import ELIZA, LANGUAGE_MODELS, Registry, model_type_of
from attnlab.serve.validate import ApiError

router = APIRouter(prefix="/v1")
CHAT_STOP = "\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def chat_prompt(messages: list[dict[str, str]]) -> str:
    """The conversation as the text a language model continues (the history format of ``attnlab chat``)."""
    parts = []
    for message in messages:
        content = message["content"].strip()
        parts.append(content + ("\n" if message["role"] == "user" else "\n\n"))
    return "".join(parts)


def eliza_reply(messages: list[dict[str, str]]) -> str:
    """ELIZA's answer to the last user message, after hearing the earlier ones (its memory included)."""
    from attnlab.eliza import Eliza

    bot, answer = Eliza(), ""
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users:
        raise ApiError("ELIZA needs at least one user message", param="messages", code="invalid_type")
    for line in users:
        answer = bot.reply(line)
    return answer


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    runs = registry_of(request).scan()
    data = [{"id": ELIZA, "object": "model", "created": 0, "owned_by": "attnlab", "kind": "eliza"}]
    for name, info in runs.items():
        if model_type_of(info["path"]) in LANGUAGE_MODELS:
            data.append({"id": name, "object": "model", "created": _created(info["path"]), "owned_by": "attnlab",
                         "kind": info["kind"]})
    return {"object": "list", "data": data}


def _created(path: Any) -> int:
    try:
        return int((path / "config.json").stat().st_mtime)
    except OSError:
        return 0


def language_model(registry: Registry, name: str) -> Any:
    """The loaded run ``name``, which must generate text."""
    entry = registry.get(name)
    if not hasattr(entry.run.model, "start_stream"):
        raise ApiError(f"model {name!r} is a {entry.run.model.model_type} model, which does not generate text",
                       code="model_not_supported", param="model")
    return entry


@router.post("/completions")
async def completions(request: Request) -> Any:
    body = validate.parse_body(await request.body())
    name, prompt = validate.model_name(body), validate.prompt(body)
    options, stream, stop = validate.sampling(body), validate.flag(body, "stream"), validate.stops(body)
    if name == ELIZA:
        raise ApiError("eliza answers chats only: use POST /v1/chat/completions", code="model_not_supported",
                       param="model")
    entry = language_model(registry_of(request), name)
    config = _config(options)
    reply = Reply("cmpl", "text_completion", name, stream)
    return await reply.respond(request, lambda emit, cancelled: generate(entry, prompt, config, stop, "error", emit,
                                                                        cancelled))


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Any:
    body = validate.parse_body(await request.body())
    name, messages = validate.model_name(body), validate.messages(body)
    options, stream, stop = validate.sampling(body, default_max=200), validate.flag(body, "stream"), \
        validate.stops(body)
    reply = Reply("chatcmpl", "chat.completion", name, stream)
    if name == ELIZA:
        answer = eliza_reply(messages)
        return await reply.respond(request, lambda emit, cancelled: _say(answer, emit, cancelled))
    entry = language_model(registry_of(request), name)
    config, prompt = _config(options), chat_prompt(messages)
    if not prompt.strip():
        raise ApiError("the messages hold no text", param="messages")

    def work(emit: Callable[[str], None], cancelled: Any) -> Result:
        leading = [True]

        def strip_leading(piece: str) -> None:  # a reply starts at its first non-newline character
            if leading[0]:
                piece = piece.lstrip("\n")
                leading[0] = not piece
            if piece:
                emit(piece)

        result = generate(entry, prompt, config, [CHAT_STOP, *stop], "skip", strip_leading, cancelled)
        result.text = result.text.strip("\n")
        return result

    return await reply.respond(request, work)


def _config(options: dict[str, Any]) -> Any:
    from attnlab.inference.sampling import SamplingConfig

    return SamplingConfig(**options)


def _say(answer: str, emit: Callable[[str], None], cancelled: Any) -> Result:
    """ELIZA's whole answer, handed out a word at a time (so it streams like a model's)."""
    for piece in re.findall(r"\S+\s*|\s+", answer):
        if cancelled.is_set():
            break
        emit(piece)
    return Result(answer, len(answer.split()), 0, "stop")


class Reply:
    """An OpenAI response, whole or streamed, for ``object`` ("text_completion" or "chat.completion")."""

    def __init__(self, prefix: str, kind: str, model: str, stream: bool) -> None:
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.kind, self.model, self.stream = kind, model, stream
        self.created = int(time.time())
        self.chat = kind == "chat.completion"

    def _envelope(self, kind: str, choice: dict[str, Any], usage: dict[str, int] | None = None) -> dict[str, Any]:
        out = {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": [choice]}
        if usage is not None:
            out["usage"] = usage
        return out

    @staticmethod
    def _usage(result: Result) -> dict[str, int]:
        return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.tokens,
                "total_tokens": result.prompt_tokens + result.tokens}

    def _chunk(self, piece: str | None, finish: str | None = None) -> str:
        if self.chat:
            delta = {} if piece is None else {"content": piece}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            kind = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
            kind = "text_completion"
        return sse(self._envelope(kind, choice))

    async def respond(self, request: Request, work: Callable) -> Any:
        generation = Generation(work)
        pieces = generation.pieces()
        if not self.stream:
            result = await generation.wait()
            if self.chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": result.text},
                          "logprobs": None, "finish_reason": result.finish_reason}
            else:
                choice = {"index": 0, "text": result.text, "logprobs": None, "finish_reason": result.finish_reason}
            return JSONResponse(self._envelope(self.kind, choice, self._usage(result)))
        try:  # the first piece before the response starts: an error now is still a plain JSON 4xx
            first = await anext(pieces)
        except StopAsyncIteration:
            first = None
        return StreamingResponse(self._events(request, generation, pieces, first), media_type="text/event-stream",
                                 headers=SSE_HEADERS)

    async def _events(self, request: Request, generation: Generation, pieces: AsyncIterator[str],
                      first: str | None) -> AsyncIterator[str]:
        try:
            if self.chat:
                yield sse(self._envelope("chat.completion.chunk", {"index": 0, "delta": {"role": "assistant",
                          "content": ""}, "logprobs": None, "finish_reason": None}))
            if first is not None:
                yield self._chunk(first)
                async for piece in pieces:
                    if await request.is_disconnected():
                        return
                    yield self._chunk(piece)
            result = generation.result
            yield self._chunk(None, result.finish_reason if result else "stop")
            yield "data: [DONE]\n\n"
        except Exception as err:  # after the headers: the error goes out as an event
            error = err if isinstance(err, ApiError) else ApiError(str(err), 500, "server_error")
            yield sse(error.body())
        finally:
            generation.cancelled.set()
            await pieces.aclose()


def sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
