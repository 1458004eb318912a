"""Checking request bodies: JSON objects, bounded text, known fields, OpenAI's names and defaults.

Every refusal is an :class:`ApiError` with an HTTP status and a message that names the field, turned
into ``{"error": {"message", "type", "code"}}`` by the app (:mod:`attnlab.serve.app`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from attnlab.errors import AttnlabError

MAX_BODY_BYTES = 1_000_000
MAX_PROMPT_CHARS = 20_000
MAX_MESSAGES = 200
MAX_TOKENS = 2_048
MAX_STOPS = 4
MAX_STOP_CHARS = 64
MAX_SEED = 2**63 - 1


class ApiError(AttnlabError):
    """A request the server refuses: ``status`` (4xx/5xx), ``kind`` (OpenAI's error type) and ``code``."""

    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.param = status, kind, code, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "code": self.code, "param": self.param}}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object."""
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(f"the request body is {len(raw):,} bytes; the limit is {MAX_BODY_BYTES:,}", 413,
                       code="body_too_large")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError("the request body is not valid JSON", 400, code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object", 400, code="invalid_json")
    return body


def text(body: dict, name: str, limit: int = MAX_PROMPT_CHARS, required: bool = True) -> str:
    """A string field of at most ``limit`` characters, valid Unicode."""
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ApiError(f"'{name}' must be a string", param=name, code="invalid_type")
    if len(value) > limit:
        raise ApiError(f"'{name}' is {len(value):,} characters long; the limit is {limit:,}", param=name,
                       code="too_long")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(f"'{name}' is not valid Unicode text", param=name, code="invalid_text") from None
    return value


def number(body: dict, name: str, default: float | None, low: float, high: float,
           low_open: bool = False) -> float | None:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(f"'{name}' must be a number", param=name, code="invalid_type")
    if value < low or value > high or (low_open and value == low):
        side = "(" if low_open else "["
        raise ApiError(f"'{name}' must be in {side}{low}, {high}], got {value}", param=name, code="out_of_range")
    return float(value)


def integer(body: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"'{name}' must be a whole number", param=name, code="invalid_type")
    if not low <= value <= high:
        raise ApiError(f"'{name}' must be from {low} to {high:,}, got {value}", param=name, code="out_of_range")
    return value


def stops(body: dict) -> list[str]:
    value = body.get("stop")
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise ApiError("'stop' must be a string or a list of strings", param="stop", code="invalid_type")
    if len(items) > MAX_STOPS or any(len(s) > MAX_STOP_CHARS for s in items):
        raise ApiError(f"'stop' takes at most {MAX_STOPS} strings of at most {MAX_STOP_CHARS} characters",
                       param="stop", code="out_of_range")
    return [s for s in items if s]


def model_name(body: dict) -> str:
    return text(body, "model", limit=500)


def flag(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(f"'{name}' must be true or false", param=name, code="invalid_type")
    return value


def sampling(body: dict, default_max: int = 16) -> dict[str, Any]:
    """temperature, top_p, top_k (an attnlab extension), max_tokens, seed, n (only 1)."""
    n = integer(body, "n", 1, 1, 1)
    del n
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return {
        "temperature": number(body, "temperature", 1.0, 0.0, 2.0),
        "top_p": number(body, "top_p", None, 0.0, 1.0, low_open=True),
        "top_k": integer(body, "top_k", None, 1, 1_000_000),
        "max_new_tokens": integer({"max_tokens": max_tokens}, "max_tokens", default_max, 0, MAX_TOKENS),
        "seed": integer(body, "seed", None, 0, MAX_SEED),
    }


def prompt(body: dict) -> str:
    """A completion's prompt: a string, or a list holding exactly one."""
    value = body.get("prompt")
    if isinstance(value, list):
        if len(value) != 1:
            raise ApiError("'prompt' must be one string (batches of prompts are not served)", param="prompt",
                           code="invalid_type")
        return text({"prompt": value[0]}, "prompt")
    return text(body, "prompt")


def messages(body: dict) -> list[dict[str, str]]:
    """A chat's messages: at most ``MAX_MESSAGES``, roles system/user/assistant, text content."""
    value = body.get("messages")
    if not isinstance(value, list) or not value:
        raise ApiError("'messages' must be a non-empty list", param="messages", code="invalid_type")
    if len(value) > MAX_MESSAGES:
        raise ApiError(f"'messages' holds {len(value)} messages; the limit is {MAX_MESSAGES}", param="messages",
                       code="too_long")
    out, total = [], 0
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise ApiError(f"messages[{i}] must be an object", param="messages", code="invalid_type")
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant"):
            raise ApiError(f"messages[{i}].role must be system, user or assistant", param="messages",
                           code="invalid_type")
        content = message.get("content") or ""
        if isinstance(content, list):  # [{"type": "text", "text": ...}]
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise ApiError(f"messages[{i}].content: only text parts are understood", param="messages",
                               code="invalid_type")
            content = "".join(str(p.get("text", "")) for p in content)
        content = text({"content": content}, "content")
        total += len(content)
        if total > MAX_PROMPT_CHARS:
            raise ApiError(f"the messages hold more than {MAX_PROMPT_CHARS:,} characters", param="messages",
                           code="too_long")
        out.append({"role": role, "content": content})
    return out
