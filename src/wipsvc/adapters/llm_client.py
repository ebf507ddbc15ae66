"""The LLM client and one request through it: an OpenAI-compatible chat-completions API.

The client is the official ``openai`` SDK (2.x, on httpx), built only when an API key is
configured (``WIPSVC_LLM_API_KEY``, else ``OPENAI_API_KEY``): :func:`build_llm_client` returns
``None`` otherwise, and callers fall back to structured data and template descriptions.

Failures: each call makes one HTTP request (the SDK's own retries are off) and raises one
classified ``StepError``; the step's retry policy (:mod:`wipsvc.pipeline.retry`) decides
whether to try again. 408, 409, 429, 5xx, timeouts and connection errors are transient, with
the server's ``retry-after`` when given; other API errors (401, 400, …) are permanent. An
unusable answer (a refusal, a ``finish_reason`` of ``length`` or ``content_filter``, output
that does not fit the schema) is transient too, and its message carries the vendor's reason
("LLM refused: …", "LLM output invalid: …").

Quotas: given :class:`~wipsvc.limits.Limits`, every HTTP request first takes a token from the
LLM request bucket and its estimated tokens (prompt characters / 4 + the completion cap, as the
vendors count them) from the token bucket. A 429 pauses the request bucket for every job
(``Retry-After`` or the bucket's backoff), and its error is ``throttled``: the step's next try
waits there without using one of its tries.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import openai
import pydantic
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel

from wipsvc.adapters.retry_after import retry_after_seconds
from wipsvc.collection import LLMConfig
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError
from wipsvc.domain.products import TokenUsage
from wipsvc.limits import Limits, Permit

if TYPE_CHECKING:
    from openai._legacy_response import LegacyAPIResponse
    from openai.types.chat import ParsedChatCompletion

DEFAULT_TIMEOUT_SECONDS = 60.0
# Page text sent for extraction: enough for a product page, bounded cost.
MAX_PAGE_TEXT_CHARS = 8_000

_T = TypeVar("_T", bound=BaseModel)


def llm_api_key(settings: Settings) -> str | None:
    if settings.llm_api_key is not None and settings.llm_api_key.get_secret_value():
        return settings.llm_api_key.get_secret_value()
    return os.environ.get("OPENAI_API_KEY") or None


def llm_model(settings: Settings, config: LLMConfig | None = None) -> str:
    return (config.model if config is not None else None) or settings.llm_model


def build_llm_client(
    settings: Settings,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    http_client: httpx.AsyncClient | None = None,
) -> AsyncOpenAI | None:
    """The shared SDK client, or None when no API key is configured (no key = no LLM).

    The SDK's own retries are off: a retry is the step's to decide (:mod:`wipsvc.pipeline.retry`).
    """
    key = llm_api_key(settings)
    if key is None:
        return None
    client = AsyncOpenAI(
        base_url=settings.llm_base_url,
        api_key=key,
        max_retries=0,
        timeout=timeout,
        http_client=http_client,
    )
    # The SDK imports its resources and types on their first use (about 0.7 s of CPU here). Done
    # now, at start-up, rather than inside a job's first requests, where it holds up the event
    # loop and with it every product's first LLM request.
    _ = client.chat.completions.with_raw_response.parse
    return client


class LLMAdapter:
    """Shared by both adapters: one structured-output request per call, its failure classified."""

    default_max_text_chars = MAX_PAGE_TEXT_CHARS
    default_max_tokens = 1_500

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str,
        max_text_chars: int | None = None,
        max_tokens: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.client, self.model = client, model
        self.limits = limits
        # One request per call, whatever client was passed in: retries are the step's.
        self._bare = client.with_options(max_retries=0) if client.max_retries else client
        self.max_text_chars = max_text_chars or self.default_max_text_chars
        self.max_tokens = max_tokens or self.default_max_tokens
        self.usage = TokenUsage()  # everything this adapter spent

    async def _call(
        self,
        schema: type[_T],
        messages: list[ChatCompletionMessageParam],
        usage: TokenUsage | None,
        check: Callable[[_T], str | None] = lambda _: None,
    ) -> _T:
        raw = await self._request(schema, messages)
        # Count the tokens before parsing: rejected answers are billed as well.
        for total in (self.usage, usage):
            if total is not None:
                total.add(_json_body(raw.http_response).get("usage"))
        try:
            completion = raw.parse()
        except openai.LengthFinishReasonError as exc:
            raise unusable(f"LLM output cut off: {str(exc).split(' - ')[0]} (finish_reason=length)") from exc
        except openai.ContentFilterFinishReasonError as exc:
            raise unusable(f"LLM output blocked: {exc}") from exc
        except pydantic.ValidationError as exc:
            raise unusable(f"LLM output invalid: {_validation_summary(exc)}") from exc
        message = completion.choices[0].message if completion.choices else None
        if message is not None and message.refusal:
            raise unusable(f"LLM refused: {message.refusal}")
        if message is None or message.parsed is None:
            raise unusable("LLM output invalid: empty answer")
        if problem := check(message.parsed):
            raise unusable(f"LLM output invalid: {problem}")
        return message.parsed

    async def _request(
        self, schema: type[_T], messages: list[ChatCompletionMessageParam]
    ) -> LegacyAPIResponse[ParsedChatCompletion[_T]]:
        """One HTTP request; with limits, through the buckets (see the module doc)."""
        if self.limits is None:
            return await self._send(schema, messages, None)
        tokens = sum(len(str(m.get("content") or "")) for m in messages) // 4 + self.max_tokens
        async with self.limits.llm_requests.permit() as permit, self.limits.llm_tokens.permit(tokens):
            return await self._send(schema, messages, permit)

    async def _send(
        self, schema: type[_T], messages: list[ChatCompletionMessageParam], permit: Permit | None
    ) -> LegacyAPIResponse[ParsedChatCompletion[_T]]:
        try:
            return await self._bare.chat.completions.with_raw_response.parse(
                model=self.model,
                messages=messages,
                response_format=schema,
                max_completion_tokens=self.max_tokens,
            )
        except openai.APITimeoutError as exc:
            raise StepError("LLM request timed out", transient=True) from exc
        except openai.APIConnectionError as exc:
            raise StepError(f"LLM request failed: {exc}", transient=True) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            wait = retry_after_seconds(exc.response.headers)
            throttled = status == 429 and permit is not None
            if throttled and permit is not None:
                permit.throttled(wait)  # pauses every job's LLM requests
            transient = status in (408, 409, 429) or status >= 500
            raise StepError(
                f"LLM API error {status}: {api_message(exc)}",
                transient=transient,
                retry_after=wait,
                throttled=throttled,
            ) from exc


def unusable(reason: str) -> StepError:
    """An answer the model may well get right when asked again: it uses one of the step's tries."""
    return StepError(reason, transient=True)


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


def _validation_summary(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "answer"
    sample = first.get("input")
    shown = f" (got {str(sample)[:120]!r})" if isinstance(sample, str) else ""
    more = f" and {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{shown}{more}"
