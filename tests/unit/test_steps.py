"""The pipeline's step runner: retries, checkpoints, resume without a second row."""

from __future__ import annotations

import pytest

from tests.support.memory_backends import Fetcher, Sheet, memory_backends
from wipsvc.adapters.base import Backends
from wipsvc.domain.errors import StepError
from wipsvc.domain.products import Descriptions
from wipsvc.domain.statuses import Step
from wipsvc.pipeline.fence import fenced_backends
from wipsvc.pipeline.retry import RetryPolicy
from wipsvc.pipeline.steps import ProductState, StepFailure, run_product
from wipsvc.store import LeaseLost
from wipsvc.store.lease import Lease, LeaseGuard


def _backends(sheet: Sheet, fetcher: Fetcher) -> Backends:
    return memory_backends(sheet, fetcher)


async def _no_sleep(_: float) -> None:
    pass


RETRY = RetryPolicy(max_attempts=3, sleep=_no_sleep)


async def _run(state: ProductState, backends: Backends) -> list[Step | None]:
    saved: list[Step | None] = []

    async def save(s: ProductState) -> None:
        saved.append(s.step_done)

    await run_product(state, backends, save, RETRY)
    return saved


async def test_transient_errors_are_retried_and_counted() -> None:
    sheet, fetcher = Sheet(), Fetcher([StepError("timed out", transient=True)] * 2)
    state = ProductState(1, "A-1", "https://shop.example/a")
    saved = await _run(state, _backends(sheet, fetcher))
    assert fetcher.calls == 3 and state.attempts["extract"] == 3 and state.attempts["sheet_row"] == 1
    assert saved[-1] is Step.COMPLETE and sheet.appends == 1
    assert sheet.writes[-1] == {"status": "ready"} and sheet.writes[0]["title"] == "Sink"


@pytest.mark.parametrize(
    ("failures", "calls", "message"),
    [
        ([StepError("HTTP 503", transient=True)] * 3, 3, "HTTP 503 (after 3 attempts)"),
        ([StepError("HTTP 404")], 1, "HTTP 404"),
    ],
)
async def test_a_failing_step_fails_the_product_but_its_row_is_added(
    failures: list[StepError], calls: int, message: str
) -> None:
    sheet, fetcher = Sheet(), Fetcher(list(failures))
    state = ProductState(1, "A-1", "https://shop.example/a")
    with pytest.raises(StepFailure) as failure:
        await _run(state, _backends(sheet, fetcher))
    assert failure.value.step is Step.EXTRACT and failure.value.message == message
    assert fetcher.calls == calls
    assert state.row_num == 2 and state.step_done is Step.SHEET_ROW  # the row went in regardless


async def test_a_resumed_product_skips_done_steps_and_never_appends_again() -> None:
    # The row was appended but the checkpoint was lost: the sheet is asked first.
    sheet = Sheet({"A-1": 7})
    state = ProductState(1, "A-1", "https://shop.example/a")
    await _run(state, _backends(sheet, Fetcher([])))
    assert sheet.appends == 0 and state.row_num == 7

    # Checkpointed up to `describe`: only clean and complete run again.
    described = ProductState(
        2,
        "B-1",
        "https://shop.example/b",
        step_done=Step.DESCRIBE,
        row_num=9,
        extracted={"fields": {"title": "Tap"}, "sources": {}},
        descriptions={
            "body_html": "<p>x</p>",
            "features": [],
            "care_instructions": "",
            "generator": "template",
        },
    )
    sheet, fetcher = Sheet(), Fetcher([])
    saved = await _run(described, _backends(sheet, fetcher))
    assert fetcher.calls == 0 and sheet.appends == 0 and saved == [Step.CLEAN, Step.COMPLETE]


async def test_a_taken_over_product_reads_the_sheet_again_before_appending() -> None:
    # The previous owner's append landed after this job opened the sheet.
    sheet = Sheet(landed={"A-1": 12})
    state = ProductState(1, "A-1", "https://shop.example/a", resumed=True)
    await _run(state, _backends(sheet, Fetcher([])))
    assert sheet.refreshes == 1 and sheet.appends == 0 and state.row_num == 12

    # A product that never ran before does not pay for the read.
    fresh = Sheet(landed={"B-1": 3})
    await _run(ProductState(2, "B-1", "https://shop.example/b"), _backends(fresh, Fetcher([])))
    assert fresh.refreshes == 0 and fresh.appends == 1


async def test_a_lost_lease_stops_the_product_without_writing_or_failing_it() -> None:
    sheet, fetcher = Sheet(), Fetcher([])
    guard = LeaseGuard(Lease("job-1", "a", seconds=15.0, margin=5.0))
    guard.lose(LeaseLost("job job-1 is no longer owned by a"))
    state = ProductState(1, "A-1", "https://shop.example/a")
    saved: list[Step | None] = []

    async def save(s: ProductState) -> None:
        saved.append(s.step_done)

    with pytest.raises(LeaseLost):  # not a StepFailure: the product is not failed, the new owner runs it
        await run_product(state, fenced_backends(_backends(sheet, fetcher), guard), save, RETRY)
    assert sheet.appends == 0 and sheet.writes == [] and saved == []
    assert state.row_num is None and state.extracted is None


def test_descriptions_round_trip_through_the_checkpoint() -> None:
    state = ProductState(
        1,
        "A",
        "u",
        descriptions={"body_html": "b", "features": ["f"], "care_instructions": "c", "generator": "template"},
    )
    assert Descriptions(**state.checkpoint()["descriptions"]).features == ["f"]
