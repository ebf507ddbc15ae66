"""The write coalescer, on a controllable loop clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tests.support.clocks import LoopClock
from wipsvc.adapters.coalesce import Batch, Coalescer
from wipsvc.domain.errors import StepError


class Sheet:
    """A flush target: records each request; can hold requests until a token is given."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.fail: dict[str, StepError] = {}  # an item in the request -> the request fails

    async def flush(self, batch: Batch[str]) -> Sequence[str]:
        if self.gate is not None:
            await self.gate.wait()  # e.g. waiting for a quota token
        items = await batch.take()
        self.requests.append(items)
        for item in items:
            if item in self.fail:
                raise self.fail[item]
        return [f"row-for-{item}" for item in items]


async def test_items_ready_within_the_window_share_one_request(clock: LoopClock) -> None:
    sheet = Sheet()
    coalescer = Coalescer(sheet.flush, window=0.25)
    first = asyncio.create_task(coalescer.submit("a"))
    await clock.advance(0.1)
    others = [asyncio.create_task(coalescer.submit(x)) for x in ("b", "c")]
    await clock.advance(0.1)
    assert sheet.requests == []  # still inside the window
    await clock.advance(0.1)
    assert sheet.requests == [["a", "b", "c"]]
    assert [await t for t in (first, *others)] == ["row-for-a", "row-for-b", "row-for-c"]
    late = asyncio.create_task(coalescer.submit("d"))
    await clock.advance(0.3)
    assert sheet.requests == [["a", "b", "c"], ["d"]] and await late == "row-for-d"
    assert coalescer.batches == 2


async def test_items_arriving_while_the_batch_waits_for_its_token_still_join(clock: LoopClock) -> None:
    sheet = Sheet()
    sheet.gate = asyncio.Event()
    coalescer = Coalescer(sheet.flush, window=0.25)
    tasks = [asyncio.create_task(coalescer.submit("a"))]
    await clock.advance(1.0)  # the window is over, but no token yet
    tasks += [asyncio.create_task(coalescer.submit(x)) for x in ("b", "c")]
    await clock.advance(5.0)
    sheet.gate.set()
    await clock.settle()
    assert sheet.requests == [["a", "b", "c"]]
    assert await asyncio.gather(*tasks) == ["row-for-a", "row-for-b", "row-for-c"]


async def test_a_full_batch_goes_at_once(clock: LoopClock) -> None:
    sheet = Sheet()
    coalescer = Coalescer(sheet.flush, window=10.0, max_items=2)
    tasks = [asyncio.create_task(coalescer.submit(x)) for x in ("a", "b", "c")]
    await clock.settle()
    assert sheet.requests == [["a", "b"]]
    await clock.advance(10.1)
    assert sheet.requests == [["a", "b"], ["c"]]
    await asyncio.gather(*tasks)


async def test_a_failed_batch_fails_only_its_own_items(clock: LoopClock) -> None:
    sheet = Sheet()
    sheet.fail["b"] = StepError("Google Sheets quota exceeded (429) after 5 attempts", transient=True)
    coalescer = Coalescer(sheet.flush, window=0.25)
    batch_one = [asyncio.create_task(coalescer.submit(x)) for x in ("a", "b")]
    await clock.advance(0.3)
    batch_two = [asyncio.create_task(coalescer.submit(x)) for x in ("c", "d")]
    await clock.advance(0.3)
    results = await asyncio.gather(*batch_one, *batch_two, return_exceptions=True)
    # A transient failure goes back to every item of that batch (each product's step retry
    # submits it again), and to no other batch.
    assert [type(r).__name__ for r in results[:2]] == ["StepError", "StepError"]
    assert results[2:] == ["row-for-c", "row-for-d"]
    assert sheet.requests == [["a", "b"], ["c", "d"]]


async def test_a_permanent_failure_is_isolated_item_by_item(clock: LoopClock) -> None:
    sheet = Sheet()
    sheet.fail["b"] = StepError("Google Sheets rejected the request (400 INVALID_ARGUMENT)")
    coalescer = Coalescer(
        sheet.flush, window=0.25, isolate=lambda e: isinstance(e, StepError) and not e.transient
    )
    tasks = [asyncio.create_task(coalescer.submit(x)) for x in ("a", "b", "c")]
    await clock.advance(0.3)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == "row-for-a" and results[2] == "row-for-c"
    assert isinstance(results[1], StepError) and "400" in results[1].message
    assert sheet.requests == [["a", "b", "c"], ["a"], ["b"], ["c"]]


async def test_close_fails_pending_items(clock: LoopClock) -> None:
    sheet = Sheet()
    coalescer = Coalescer(sheet.flush, window=5.0)
    task = asyncio.create_task(coalescer.submit("a"))
    await clock.settle()
    await coalescer.aclose()
    with pytest.raises(RuntimeError, match="cancelled"):
        await task
    assert sheet.requests == []


async def test_waiting_for_the_window_and_for_the_token_overlap(clock: LoopClock) -> None:
    sheet = Sheet()
    sheet.gate = asyncio.Event()
    coalescer = Coalescer(sheet.flush, window=0.25)
    task = asyncio.create_task(coalescer.submit("a"))
    await clock.advance(0.1)
    sheet.gate.set()  # the token came before the window ended: the flush waits out the window only
    await clock.advance(0.1)
    assert sheet.requests == []
    await clock.advance(0.1)
    assert sheet.requests == [["a"]] and await task == "row-for-a"
