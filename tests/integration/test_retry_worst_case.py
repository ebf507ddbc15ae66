"""The worst case of one step's requests to the LLM and to Google Sheets, through the real clients
against the fakes and the pipeline's own step runner: whatever mix of transient errors and
unusable answers a step meets, it makes at most the step attempt setting of requests per call."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes import openai_api as behaviours
from tests.fakes.openai_api import Behaviour, FakeOpenAI
from tests.fakes.sheets import FakeSheets
from tests.support.netguard import LoopbackOnlyTransport
from wipsvc.adapters.base import Backends, FetchedPage
from wipsvc.adapters.builtin_cleaner import PythonCleaner
from wipsvc.adapters.builtin_describer import TemplateDescriber
from wipsvc.adapters.builtin_extractor import StructuredDataExtractor
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.adapters.llm import LLMDescriber
from wipsvc.collection import CollectionConfig, SheetConfig
from wipsvc.pipeline.retry import RetryPolicy
from wipsvc.pipeline.steps import ProductState, StepFailure, run_product

# Every way an LLM call can fail that is worth another try: errors of the API and answers
# that cannot be used.
UNUSABLE_OR_TRANSIENT: list[Behaviour] = [
    behaviours.server_error(),
    behaviours.rate_limit(retry_after="0"),  # no quota bucket here: a try like any other
    behaviours.refusal(),
    behaviours.invalid_json(),
    behaviours.length(),
    behaviours.content_filter(),
]
SHEETS_TRANSIENT = [429, 500, 502, 503, 408]


class NoFetcher:
    async def fetch(self, url: str) -> FetchedPage:
        raise AssertionError("the product's page was read already")

    async def aclose(self) -> None:
        pass


async def _no_sleep(_: float) -> None:
    pass


def _state_before(step: str) -> ProductState:
    """A product whose earlier steps are done (checkpointed), so that ``step`` runs next."""
    state = ProductState(1, "WC-1", "http://127.0.0.1:9/p/wc-1", row_num=2)
    state.extracted = {"fields": {"title": "Worst case"}, "sources": {"title": "json-ld"}, "main_text": ""}
    if step == "clean":
        state.descriptions = {
            "body_html": "<p>x</p>",
            "features": [],
            "care_instructions": "",
            "generator": "template",
        }
    return state


async def _failing_run(state: ProductState, backends: Backends, max_attempts: int) -> StepFailure:
    """Run the product's remaining steps under the policy; the step failure it must end in."""

    async def save(_: ProductState) -> None:
        pass

    with pytest.raises(StepFailure) as failed:
        await run_product(state, backends, save, RetryPolicy(max_attempts=max_attempts, sleep=_no_sleep))
    return failed.value


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-worst-case") as fake:
        yield fake


@pytest.mark.parametrize("max_attempts", [1, 3, 5])
@pytest.mark.parametrize("seed", range(4))
async def test_the_describe_step_makes_at_most_max_attempts_llm_requests(
    fake_llm: FakeOpenAI, sheets: FakeSheets, credentials: Path, max_attempts: int, seed: int
) -> None:
    mix = random.Random(seed).choices(UNUSABLE_OR_TRANSIENT, k=3 * max_attempts)
    fake_llm.enqueue(*mix)
    client = openai.AsyncOpenAI(
        base_url=fake_llm.base_url,
        api_key=fake_llm.api_key,
        max_retries=2,  # the adapter turns the client's own retries off
        http_client=openai.DefaultAsyncHttpxClient(transport=LoopbackOnlyTransport()),
    )
    sid = sheets.add_spreadsheet()
    google = GoogleSheetsBackend(sheets.url, str(credentials))
    session = await google.open(CollectionConfig(sheet=SheetConfig(backend="google", spreadsheet_id=sid)))
    backends = Backends(
        session, NoFetcher(), StructuredDataExtractor(), LLMDescriber(client, model="m"), PythonCleaner()
    )
    state = _state_before("describe")
    try:
        failed = await _failing_run(state, backends, max_attempts)
    finally:
        await client.close()
        await google.aclose()

    assert failed.step == "describe"
    assert len(fake_llm.requests) == max_attempts == state.attempts["describe"]
    assert sheets.count(kind="write") == 0


@pytest.mark.parametrize("max_attempts", [1, 3, 5])
@pytest.mark.parametrize("seed", range(4))
async def test_the_clean_step_makes_at_most_max_attempts_sheets_writes(
    sheets: FakeSheets, credentials: Path, max_attempts: int, seed: int
) -> None:
    sid = sheets.add_spreadsheet()
    google = GoogleSheetsBackend(sheets.url, str(credentials))
    session = await google.open(CollectionConfig(sheet=SheetConfig(backend="google", spreadsheet_id=sid)))
    for status in random.Random(seed).choices(SHEETS_TRANSIENT, k=3 * max_attempts):
        sheets.fail_next(1, status, method="values.batchUpdate", after_apply=status >= 500)
    backends = Backends(session, NoFetcher(), StructuredDataExtractor(), TemplateDescriber(), PythonCleaner())
    state = _state_before("clean")
    try:
        failed = await _failing_run(state, backends, max_attempts)
    finally:
        await google.aclose()

    assert failed.step == "clean"
    assert sheets.count("values.batchUpdate") == max_attempts == state.attempts["clean"]
