"""The LLM adapters through the real openai SDK (httpx) against a fake API on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import openai
import pytest
from pydantic import SecretStr

from tests.fakes import openai_api as behaviours
from tests.fakes.openai_api import FakeOpenAI, RecordedRequest
from tests.support.netguard import LoopbackOnlyTransport
from wipsvc.adapters.base import FetchedPage
from wipsvc.adapters.llm import LLMDescriber, LLMExtractor
from wipsvc.adapters.llm_client import build_llm_client, llm_model
from wipsvc.collection import LLMConfig
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError
from wipsvc.domain.products import ExtractedProduct, TokenUsage
from wipsvc.pipeline.retry import RetryPolicy, with_retries

MODEL = "test-model"
T = TypeVar("T")


async def _no_sleep(_: float) -> None:
    return None


async def as_a_step(call: Callable[[], Awaitable[T]], *, attempts: int = 3) -> T:
    """``call`` tried as a product's step would be: under the one retry policy."""
    return await with_retries(call, RetryPolicy(max_attempts=attempts, sleep=_no_sleep), "step")


PAGE_URL = "http://127.0.0.1:9/products/trail-runner-2"

PARTIAL_LD: dict[str, Any] = {
    "@context": "https://schema.org",
    "@type": "Product",
    "name": "Trail Runner 2",
    "brand": {"@type": "Brand", "name": "Peakline"},
    "sku": "PL-TR2",
    "offers": {"@type": "Offer", "price": "89.90", "priceCurrency": "EUR", "availability": "InStock"},
    "image": "/img/tr2.jpg",
}
COMPLETE_LD: dict[str, Any] = {
    **PARTIAL_LD,
    "mpn": "TR2-GRN-42",
    "gtin13": "4006381333931",
    "description": "A light trail shoe.",
    "category": "Shoes > Trail",
    "color": "Forest green",
    "material": "Recycled mesh",
}
BODY = """<main><h1>Trail Runner 2</h1>
<p>A light trail running shoe with a grippy outsole for wet rock and mud, built for long distances.</p>
<p>Material: Recycled mesh</p>
<p>Color: Forest green</p>
<p>The cushioning keeps you comfortable over long days on the trail and the upper dries quickly.</p></main>"""


def page(ld: dict[str, Any] | None, *, title: str = "Trail Runner 2 | Shop", body: str = BODY) -> FetchedPage:
    script = f'<script type="application/ld+json">{json.dumps(ld)}</script>' if ld else ""
    head = f"<title>{title}</title>" if title else ""
    text = f"<html><head>{head}{script}</head><body>{body}</body></html>"
    return FetchedPage(url=PAGE_URL, status_code=200, content_type="text/html", text=text)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-test-123") as server:
        yield server


@pytest.fixture
def transport() -> LoopbackOnlyTransport:
    return LoopbackOnlyTransport()


async def make_client(
    fake: FakeOpenAI,
    transport: LoopbackOnlyTransport,
    *,
    max_retries: int = 2,
    timeout: float = 10.0,
    key: str = "",
) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=fake.base_url,
        api_key=key or fake.api_key,
        max_retries=max_retries,
        timeout=timeout,
        http_client=openai.DefaultAsyncHttpxClient(transport=transport),
    )


@pytest.fixture
async def client(fake: FakeOpenAI, transport: LoopbackOnlyTransport) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = await make_client(fake, transport)
    yield sdk
    await sdk.close()


def product_for_description() -> ExtractedProduct:
    return ExtractedProduct(
        fields={"title": "Trail Runner 2", "brand": "Peakline", "material": "Recycled mesh"},
        sources={"title": "json-ld", "brand": "json-ld", "material": "llm"},
        main_text="A light trail running shoe.",
    )


def usage_of(requests: list[RecordedRequest]) -> tuple[int, int, int]:
    answered = [r.usage for r in requests if r.usage is not None]
    return (
        sum(u["prompt_tokens"] for u in answered),
        sum(u["completion_tokens"] for u in answered),
        sum(u["total_tokens"] for u in answered),
    )


def totals(usage: TokenUsage) -> tuple[int, int, int]:
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


# -- extraction -------------------------------------------------------------------------------------


async def test_extraction_fills_only_missing_fields(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    # The model also "answers" fields the structured data has: those answers must be ignored.
    fake.answer({"title": "Some Other Shoe", "brand": "Knockoff", "price": "1.00", "mpn": "TR2-GRN-42"})
    extractor = LLMExtractor(client, model=MODEL)

    product = await extractor.extract(page(PARTIAL_LD), sku="SKU-1")

    assert product.fields["title"] == "Trail Runner 2"
    assert product.fields["brand"] == "Peakline"
    assert product.fields["price"] == "89.90"
    for name in ("title", "brand", "price", "currency", "sku", "availability", "image_url"):
        assert product.sources[name] == "json-ld"
    # Missing ones come from the model, read off the page text by the fake.
    assert product.fields["material"] == "Recycled mesh"
    assert product.fields["color"] == "Forest green"
    assert product.fields["mpn"] == "TR2-GRN-42"
    assert product.fields["gtin"] == "4006381333931"
    for name in ("material", "color", "mpn", "gtin", "category", "description"):
        assert product.sources[name] == "llm"

    [request] = fake.requests
    assert request.model == MODEL
    assert request.schema_name == "ExtractedFields"
    assert request.authorization == "Bearer sk-test-123"
    assert "Recycled mesh" in request.user_text
    assert "material" in request.user_text.split("Find these missing fields:")[1].splitlines()[0]


async def test_no_llm_call_when_structured_data_is_complete(
    client: openai.AsyncOpenAI, fake: FakeOpenAI
) -> None:
    extractor = LLMExtractor(client, model=MODEL)

    product = await extractor.extract(page(COMPLETE_LD), sku="SKU-1")

    assert fake.requests == []
    assert "llm" not in product.sources.values()
    assert extractor.usage == TokenUsage()


async def test_model_values_are_checked_before_use(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.answer(
        {"gtin": "4006381333932", "color": "<b>Forest</b> green", "images": ["/img/a.jpg", "javascript:x"]}
    )
    ld = {k: v for k, v in PARTIAL_LD.items() if k != "image"}

    product = await LLMExtractor(client, model=MODEL).extract(page(ld), sku="SKU-1")

    assert "gtin" not in product.fields  # bad check digit: not read off a real barcode
    assert product.fields["color"] == "Forest green"
    assert product.fields["images"] == ["http://127.0.0.1:9/img/a.jpg"]


async def test_html_title_is_replaced_by_the_model(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.answer({"title": "Trail Runner 2 Forest Green"})

    product = await LLMExtractor(client, model=MODEL).extract(page(None), sku="SKU-1")

    assert product.fields["title"] == "Trail Runner 2 Forest Green"
    assert product.sources["title"] == "llm"


async def test_no_title_anywhere_is_a_step_error(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.answer({"title": None})

    with pytest.raises(StepError, match="no product title") as caught:
        await LLMExtractor(client, model=MODEL).extract(
            page(None, title="", body="<p>Nothing.</p>"), sku="SKU-1"
        )
    assert not caught.value.transient


# -- descriptions -----------------------------------------------------------------------------------


async def test_descriptions_are_sanitised(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.answer(
        {
            "body_html": '<h3 class="x">Built for trails</h3><p onclick="steal()">Light and '
            '<strong>grippy</strong>.</p><script>alert("pwned")</script><img src=x onerror=alert(1)><a href="https://evil.example">go</a>',
            "features": ["<em>Light</em> upper", "Light upper", " - Grippy outsole ", ""],
            "care_instructions": "<i>Hand wash</i> &amp; air dry",
        }
    )

    descriptions = await LLMDescriber(client, model=MODEL).describe(product_for_description(), sku="SKU-1")

    assert descriptions.body_html == "<h3>Built for trails</h3><p>Light and <strong>grippy</strong>.</p>go"
    assert "script" not in descriptions.body_html
    assert "alert" not in descriptions.body_html
    assert descriptions.features == ["Light upper", "Grippy outsole"]
    assert descriptions.care_instructions == "Hand wash & air dry"
    assert descriptions.generator == "llm"
    [request] = fake.requests
    assert request.schema_name == "ProductDescriptions"
    assert "Recycled mesh" in request.user_text


async def test_body_that_sanitises_to_nothing_is_retried(
    client: openai.AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.answer({"body_html": "<script>only()</script>"})

    describer = LLMDescriber(client, model=MODEL)
    with pytest.raises(StepError, match="body_html is empty after sanitising"):
        await as_a_step(lambda: describer.describe(product_for_description(), sku="SKU-1"))
    assert len(fake.requests) == 3


# -- unusable answers: one request per call, a transient StepError with the vendor's message, and the
# step's tries (three here) as the bound ---------------------------------------------------------------


async def test_refusal_is_retried_then_reported(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.when(lambda r: True, behaviours.refusal("I can't assist with that request."))

    describer = LLMDescriber(client, model=MODEL)
    with pytest.raises(StepError) as caught:
        await as_a_step(lambda: describer.describe(product_for_description(), sku="SKU-1"))

    assert caught.value.message == "LLM refused: I can't assist with that request."
    assert caught.value.transient  # another answer may do: it uses one of the step's tries
    assert len(fake.requests) == 3


async def test_one_refusal_then_success(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.enqueue(behaviours.refusal())

    describer = LLMDescriber(client, model=MODEL)
    descriptions = await as_a_step(lambda: describer.describe(product_for_description(), sku="SKU-1"))

    assert descriptions.body_html.startswith("<p>")
    assert [r.outcome for r in fake.requests] == ["refusal", "ok"]


async def test_invalid_json_is_retried_then_reported(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.enqueue(*[behaviours.invalid_json("Sure! Here it is: {title: oops")] * 3)

    extractor = LLMExtractor(client, model=MODEL)
    with pytest.raises(StepError) as caught:
        await as_a_step(lambda: extractor.extract(page(PARTIAL_LD), sku="SKU-1"))

    assert caught.value.message.startswith("LLM output invalid: ")
    assert "Invalid JSON" in caught.value.message
    assert "Sure! Here it is" in caught.value.message
    assert len(fake.requests) == 3


async def test_length_cut_off_is_retried_then_reported(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.enqueue(*[behaviours.length()] * 2)

    describer = LLMDescriber(client, model=MODEL)
    with pytest.raises(StepError) as caught:
        await as_a_step(lambda: describer.describe(product_for_description(), sku="S"), attempts=2)

    assert "LLM output cut off" in caught.value.message
    assert "length limit was reached" in caught.value.message
    assert len(fake.requests) == 2


async def test_content_filter_is_reported(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.enqueue(*[behaviours.content_filter()] * 3)

    describer = LLMDescriber(client, model=MODEL)
    with pytest.raises(StepError, match=r"LLM output blocked: .*content filter"):
        await as_a_step(lambda: describer.describe(product_for_description(), sku="SKU-1"))
    assert len(fake.requests) == 3


# -- transport-level failures -----------------------------------------------------------------------


async def test_rate_limit_with_retry_after_is_retried_after_it_and_succeeds(
    client: openai.AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(behaviours.rate_limit(retry_after="0.4"))
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    describer = LLMDescriber(client, model=MODEL)
    policy = RetryPolicy(max_attempts=3, sleep=sleep)
    descriptions = await with_retries(
        lambda: describer.describe(product_for_description(), sku="SKU-1"), policy, "describe"
    )

    assert waits == [0.4]  # the step waited as told
    assert descriptions.generator == "llm"
    assert [r.outcome for r in fake.requests] == ["rate_limit", "ok"]


async def test_persistent_rate_limit_is_transient(fake: FakeOpenAI, transport: LoopbackOnlyTransport) -> None:
    fake.when(lambda r: True, behaviours.rate_limit(retry_after="0.01"))
    sdk = await make_client(fake, transport, max_retries=1)
    try:
        with pytest.raises(StepError) as caught:
            await LLMDescriber(sdk, model=MODEL).describe(product_for_description(), sku="SKU-1")
    finally:
        await sdk.close()

    assert caught.value.transient
    assert caught.value.message == "LLM API error 429: Rate limit reached for requests"
    assert caught.value.retry_after == 0.01
    assert len(fake.requests) == 1  # the client's own retries are off: retries are the step's


async def test_server_error_is_one_request_and_transient(
    fake: FakeOpenAI, transport: LoopbackOnlyTransport
) -> None:
    fake.enqueue(*[behaviours.server_error()] * 2)
    sdk = await make_client(fake, transport, max_retries=1)
    try:
        with pytest.raises(StepError, match="LLM API error 500") as caught:
            await LLMExtractor(sdk, model=MODEL).extract(page(PARTIAL_LD), sku="SKU-1")
    finally:
        await sdk.close()
    assert caught.value.transient
    assert len(fake.requests) == 1


async def test_timeout_is_transient(fake: FakeOpenAI, transport: LoopbackOnlyTransport) -> None:
    fake.enqueue(behaviours.delay(1.0))
    sdk = await make_client(fake, transport, max_retries=0, timeout=0.2)
    try:
        with pytest.raises(StepError, match="timed out") as caught:
            await LLMDescriber(sdk, model=MODEL).describe(product_for_description(), sku="SKU-1")
    finally:
        await sdk.close()
    assert caught.value.transient


async def test_wrong_key_is_permanent(fake: FakeOpenAI, transport: LoopbackOnlyTransport) -> None:
    sdk = await make_client(fake, transport, key="sk-wrong")
    try:
        with pytest.raises(StepError, match="LLM API error 401: Incorrect API key") as caught:
            await LLMDescriber(sdk, model=MODEL).describe(product_for_description(), sku="SKU-1")
    finally:
        await sdk.close()
    assert not caught.value.transient
    assert len(fake.requests) == 1  # 401 is not retried


# -- token usage ------------------------------------------------------------------------------------


async def test_token_usage_adds_up_per_product(client: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    extractor = LLMExtractor(client, model=MODEL)
    describer = LLMDescriber(client, model=MODEL)
    first, second = TokenUsage(), TokenUsage()

    product = await extractor.extract(page(PARTIAL_LD), sku="SKU-1", usage=first)
    await describer.describe(product, sku="SKU-1", usage=first)
    first_requests = list(fake.requests)
    fake.enqueue(behaviours.invalid_json())  # a rejected answer still costs tokens
    await as_a_step(lambda: describer.describe(product_for_description(), sku="SKU-2", usage=second))
    second_requests = fake.requests[len(first_requests) :]

    assert first.calls == 2
    assert second.calls == 2
    assert totals(first) == usage_of(first_requests)
    assert totals(second) == usage_of(second_requests)
    assert first.total_tokens == first.prompt_tokens + first.completion_tokens > 0
    # The adapters' running totals cover everything the fake answered.
    assert extractor.usage.total_tokens + describer.usage.total_tokens == fake.total_usage()["total_tokens"]
    assert extractor.usage.calls == 1
    assert describer.usage.calls == 3


# -- configuration ----------------------------------------------------------------------------------


async def test_client_is_built_only_with_a_key(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert build_llm_client(Settings(_env_file=None, llm_base_url=fake.base_url)) is None

    monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
    from_env = build_llm_client(Settings(_env_file=None, llm_base_url=fake.base_url))
    assert from_env is not None
    settings = Settings(_env_file=None, llm_base_url=fake.base_url, llm_api_key=SecretStr("sk-other"))
    from_settings = build_llm_client(settings, timeout=5)
    assert from_settings is not None
    try:
        assert from_settings.api_key == "sk-other"  # the setting wins over the environment
        assert from_settings.max_retries == 0  # retries are the step's
        descriptions = await LLMDescriber(from_env, model=MODEL).describe(product_for_description(), sku="S")
        assert descriptions.generator == "llm"
    finally:
        await from_env.close()
        await from_settings.close()

    assert llm_model(settings) == settings.llm_model
    assert llm_model(settings, LLMConfig(model="special")) == "special"
