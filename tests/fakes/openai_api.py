"""A fake OpenAI-compatible chat-completions API, served over real HTTP on 127.0.0.1.

``with FakeOpenAI() as fake:`` serves (at ``fake.base_url``) ``POST /v1/chat/completions`` and
``GET /v1/models`` (the ids in ``fake.models``; what a configuration check calls). When the
request carries ``response_format.json_schema.schema`` the answer is JSON valid for that schema: string
fields are taken from ``name: value`` lines of the user message when present (so extraction-like
prompts get values from the page), otherwise from plausible per-name defaults. Tests steer it with
:meth:`FakeOpenAI.answer` (fixed top-level values), :meth:`FakeOpenAI.enqueue` (behaviours for the
next N calls) and :meth:`FakeOpenAI.when` (behaviours for calls matching a predicate).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import ServedFake, ThreadedServer

JSON = dict[str, Any]

BehaviourKind = Literal[
    "ok", "rate_limit", "server_error", "delay", "refusal", "invalid_json", "length", "content_filter"
]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the fake does for one call; build them with the helpers below."""

    kind: BehaviourKind
    message: str = ""
    retry_after: str | None = None
    seconds: float = 0.0


def ok() -> Behaviour:
    return Behaviour("ok")


def rate_limit(
    retry_after: float | str = "0.05", message: str = "Rate limit reached for requests"
) -> Behaviour:
    # The SDK accepts non-standard float seconds in retry-after, which keeps tests fast.
    return Behaviour("rate_limit", message=message, retry_after=str(retry_after))


def server_error(message: str = "The server had an error while processing your request.") -> Behaviour:
    return Behaviour("server_error", message=message)


def delay(seconds: float) -> Behaviour:
    """Answer normally, but only after ``seconds`` (longer than the client timeout → a timeout)."""
    return Behaviour("delay", seconds=seconds)


def refusal(message: str = "I'm sorry, I can't help with that request.") -> Behaviour:
    return Behaviour("refusal", message=message)


def invalid_json(content: str = "Sure! Here is the product: {title: oops") -> Behaviour:
    return Behaviour("invalid_json", message=content)


def length() -> Behaviour:
    """``finish_reason: "length"`` with the JSON cut off mid-way."""
    return Behaviour("length")


def content_filter() -> Behaviour:
    return Behaviour("content_filter")


@dataclass(slots=True)
class RecordedRequest:
    model: str
    messages: list[JSON]
    schema_name: str | None
    schema: JSON | None
    authorization: str | None
    body: JSON
    outcome: BehaviourKind | Literal["unauthorized"] = "ok"
    usage: JSON | None = None

    @property
    def user_text(self) -> str:
        return "\n".join(_message_text(m) for m in self.messages if m.get("role") == "user")

    @property
    def system_text(self) -> str:
        return "\n".join(_message_text(m) for m in self.messages if m.get("role") in ("system", "developer"))


@dataclass(slots=True)
class _Rule:
    predicate: Callable[[RecordedRequest], bool]
    behaviour: Behaviour
    times: int | None


@dataclass
class FakeOpenAI(ServedFake):
    api_key: str = "sk-test-key"
    models: tuple[str, ...] = ("gpt-4o-mini", "fake-model")
    requests: list[RecordedRequest] = field(default_factory=list)
    model_list_requests: int = 0  # GET /v1/models, answered or refused
    _answers: JSON = field(default_factory=dict)
    _queue: deque[Behaviour] = field(default_factory=deque)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        self._server = ThreadedServer(self.app)

    # -- lifecycle --------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What to give ``AsyncOpenAI(base_url=…)`` / ``WIPSVC_LLM_BASE_URL``."""
        return f"{self._server.url}/v1"

    # -- steering ---------------------------------------------------------------------------------------
    def answer(self, values: JSON) -> None:
        """Force top-level values of every schema answer (keys absent from a schema are ignored)."""
        with self._lock:
            self._answers.update(values)

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Behaviours for the next calls, in order, before rules and the default answer."""
        with self._lock:
            self._queue.extend(behaviours)

    def when(
        self, predicate: Callable[[RecordedRequest], bool], behaviour: Behaviour, *, times: int | None = None
    ) -> None:
        """Apply ``behaviour`` to calls matching ``predicate`` (``times`` = how often; None = always)."""
        with self._lock:
            self._rules.append(_Rule(predicate, behaviour, times))

    # -- inspection -------------------------------------------------------------------------------------
    def completed(self) -> list[RecordedRequest]:
        """Requests that got a 200 answer (whatever its content)."""
        return [r for r in self.requests if r.usage is not None]

    def total_usage(self) -> JSON:
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for request in self.completed():
            assert request.usage is not None
            for key in totals:
                totals[key] += int(request.usage[key])
        return totals

    # -- the endpoint -----------------------------------------------------------------------------------
    def _pick(self, recorded: RecordedRequest) -> Behaviour:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            for rule in self._rules:
                if rule.times != 0 and rule.predicate(recorded):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.behaviour
            return Behaviour("ok")

    async def _models(self, request: Request) -> Response:
        with self._lock:
            self.model_list_requests += 1
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        data = [{"id": model, "object": "model", "created": 0, "owned_by": "fake"} for model in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        body: JSON = await request.json()
        response_format = body.get("response_format") or {}
        json_schema = response_format.get("json_schema") or {}
        recorded = RecordedRequest(
            model=str(body.get("model", "")),
            messages=list(body.get("messages", [])),
            schema_name=json_schema.get("name"),
            schema=json_schema.get("schema"),
            authorization=request.headers.get("authorization"),
            body=body,
        )
        with self._lock:
            self.requests.append(recorded)
        if recorded.authorization != f"Bearer {self.api_key}":
            recorded.outcome = "unauthorized"
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

        behaviour = self._pick(recorded)
        recorded.outcome = behaviour.kind
        if behaviour.kind == "rate_limit":
            headers = {"retry-after": behaviour.retry_after or "1"}
            return _error(429, behaviour.message, "requests", "rate_limit_exceeded", headers)
        if behaviour.kind == "server_error":
            return _error(500, behaviour.message, "server_error", None)
        if behaviour.kind == "delay":
            await asyncio.sleep(behaviour.seconds)

        content: str | None
        refusal_text: str | None = None
        finish_reason = "stop"
        if recorded.schema is not None:
            with self._lock:
                forced = dict(self._answers)
            value = generate(recorded.schema, recorded.schema, "", recorded.user_text)
            if isinstance(value, dict):
                value.update({k: v for k, v in forced.items() if k in value})
            content = json.dumps(value)
        else:
            content = "This is a plausible answer from the fake model."

        if behaviour.kind == "refusal":
            content, refusal_text = None, behaviour.message
        elif behaviour.kind == "invalid_json":
            content = behaviour.message
        elif behaviour.kind == "length":
            content, finish_reason = (content or "")[: max(1, len(content or "") // 2)], "length"
        elif behaviour.kind == "content_filter":
            content, finish_reason = None, "content_filter"

        prompt_tokens = sum(_count_tokens(_message_text(m)) for m in recorded.messages) + 3
        completion_tokens = _count_tokens(content or refusal_text or "") + 1
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        recorded.usage = usage
        return JSONResponse(
            {
                "id": f"chatcmpl-fake{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": recorded.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": refusal_text},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": usage,
            }
        )


def _error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _message_text(message: JSON) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _count_tokens(text: str) -> int:
    # Roughly what a tokenizer does with English (≈ one token per word or punctuation mark); only
    # the bookkeeping matters here, not the exact numbers.
    return len(re.findall(r"\w+|[^\w\s]", text))


# -- schema-driven answers ----------------------------------------------------------------------------

_DEFAULT_STRINGS: dict[str, str] = {
    "title": "Classic Cotton Shirt",
    "name": "Classic Cotton Shirt",
    "brand": "Acme",
    "price": "19.99",
    "currency": "EUR",
    "description": "A comfortable everyday product made to last.",
    "image_url": "https://shop.example/images/product.jpg",
    "gtin": "4006381333931",
    "mpn": "MPN-1001",
    "sku": "SKU-1001",
    "availability": "InStock",
    "category": "Apparel",
    "color": "Blue",
    "material": "Cotton",
    "body_html": "<p>A comfortable everyday product.</p><ul><li>Soft</li><li>Durable</li></ul>",
    "care_instructions": "Machine wash at 30°C. Do not tumble dry.",
}


def _resolve(schema: JSON, root: JSON) -> JSON:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        return {**_resolve(target, root), **merged}
    return schema


def _from_user_text(name: str, user_text: str) -> str | None:
    match = re.search(rf"(?im)^\s*[-*]?\s*{re.escape(name)}\s*[:=]\s*(.+?)\s*$", user_text)
    if match and match.group(1).lower() not in ("null", "none", "(missing)", "missing", "?"):
        return match.group(1).strip("\"'")
    return None


def generate(schema: JSON, root: JSON, name: str, user_text: str) -> Any:
    """A value valid for ``schema`` (the JSON-schema subset strict structured outputs allow)."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            variants = [_resolve(v, root) for v in schema[key]]
            non_null = [v for v in variants if v.get("type") != "null"]
            return generate((non_null or variants)[0], root, name, user_text)
    type_ = schema.get("type", "object")
    if isinstance(type_, list):
        non_null_types = [t for t in type_ if t != "null"]
        type_ = non_null_types[0] if non_null_types else "null"
    if type_ == "object":
        properties: dict[str, JSON] = schema.get("properties", {})
        return {key: generate(sub, root, key, user_text) for key, sub in properties.items()}
    if type_ == "array":
        items = schema.get("items", {"type": "string"})
        count = max(int(schema.get("minItems", 0)), 2)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [_numbered(generate(items, root, name, user_text), i) for i in range(count)]
    if type_ == "string":
        found = _from_user_text(name, user_text)
        if found is not None:
            return found
        if name in _DEFAULT_STRINGS:
            return _DEFAULT_STRINGS[name]
        if name.endswith(("url", "image", "images")):
            return "https://shop.example/images/product.jpg"
        words = re.findall(r"[A-Za-z]{3,}", user_text)
        return " ".join(words[:4]) if words else "Lorem ipsum"
    if type_ == "integer":
        return 1
    if type_ == "number":
        return 19.99
    if type_ == "boolean":
        return True
    return None


def _numbered(value: Any, index: int) -> Any:
    # Distinct list items look more like real answers (and survive de-duplication).
    if isinstance(value, str) and index:
        if value.startswith("http"):
            return value.replace(".jpg", f"-{index + 1}.jpg")
        return f"{value} {index + 1}"
    return value
