"""Quota tokens go to waiting calls by their job's priority, FIFO within a priority, and ageing
bounds every wait; driven by a controllable loop clock."""

from __future__ import annotations

import asyncio

from tests.support.clocks import LoopClock
from wipsvc.domain.priority import Priority, effective_rank
from wipsvc.limits import QuotaBucket
from wipsvc.limits.waiting import PriorityGate, call_priority

URGENT, NORMAL, LOW = Priority.URGENT, Priority.NORMAL, Priority.LOW


async def call(bucket: QuotaBucket, priority: Priority, name: str, served: list[tuple[str, float]]) -> None:
    """One call of a job of ``priority`` (as the job runner sets it for its tasks)."""
    call_priority.set(priority)
    async with bucket.permit():
        served.append((name, asyncio.get_running_loop().time()))


def names(served: list[tuple[str, float]]) -> list[str]:
    return [name for name, _ in served]


async def test_waiters_are_served_urgent_then_normal_then_low_fifo_within_each(clock: LoopClock) -> None:
    bucket = QuotaBucket("writes", 1, 10.0)
    served: list[tuple[str, float]] = []
    await bucket.acquire()  # the only token: everyone below waits
    arrivals = [(LOW, "low-1"), (NORMAL, "normal-1"), (URGENT, "urgent-1"), (NORMAL, "normal-2")]
    arrivals += [(URGENT, "urgent-2"), (LOW, "low-2")]
    tasks = []
    for priority, name in arrivals:
        tasks.append(asyncio.create_task(call(bucket, priority, name, served)))
        await clock.settle()  # arrival order is the order above
    await clock.advance(70)
    await asyncio.gather(*tasks)
    assert names(served) == ["urgent-1", "urgent-2", "normal-1", "normal-2", "low-1", "low-2"]


async def test_an_urgent_job_overtakes_a_large_normal_job_already_waiting(clock: LoopClock) -> None:
    bucket = QuotaBucket("llm", 6, 60.0, burst=1)  # paced: one call every 10 s
    served: list[tuple[str, float]] = []
    normal = [asyncio.create_task(call(bucket, NORMAL, f"normal-{n}", served)) for n in range(30)]
    await clock.advance(35)  # the normal job's calls trickle through at quota pace
    before = len(served)
    urgent = [asyncio.create_task(call(bucket, URGENT, f"urgent-{n}", served)) for n in range(5)]
    await clock.advance(60)
    await asyncio.gather(*urgent)
    # The next five tokens after the urgent calls arrived were all theirs.
    assert names(served)[before : before + 5] == [f"urgent-{n}" for n in range(5)]
    for task in normal:
        task.cancel()
    await asyncio.gather(*normal, return_exceptions=True)


async def _low_waiter_under_urgent_stream(clock: LoopClock, ageing: float | None) -> float | None:
    """A low call waits while a new urgent call arrives every 5 s, twice the bucket's pace:
    when (seconds after it arrived) is it served, if within 300 s?"""
    bucket = QuotaBucket("writes", 1, 10.0, ageing=ageing)
    served: list[tuple[str, float]] = []
    await bucket.acquire()
    start = clock.now
    low = asyncio.create_task(call(bucket, LOW, "low", served))
    await clock.settle()
    stream = []
    for _ in range(60):
        stream.append(asyncio.create_task(call(bucket, URGENT, "urgent", served)))
        await clock.advance(5)
    served_at = next((at - start for name, at in served if name == "low"), None)
    for task in [low, *stream]:
        task.cancel()
    await asyncio.gather(low, *stream, return_exceptions=True)
    return served_at


async def test_without_ageing_a_stream_of_urgent_calls_starves_a_low_one(clock: LoopClock) -> None:
    assert await _low_waiter_under_urgent_stream(clock, ageing=None) is None


async def test_ageing_bounds_a_low_waiters_wait_under_a_stream_of_urgent_calls(clock: LoopClock) -> None:
    served_at = await _low_waiter_under_urgent_stream(clock, ageing=30.0)
    # After 2 x 30 s it ranks as urgent, ahead of every urgent call that came after it: served
    # at the next token (one every 10 s).
    assert served_at is not None and 60.0 <= served_at <= 70.0


def test_effective_rank_rises_one_class_per_ageing_period() -> None:
    assert effective_rank(LOW.rank, 29.9, 30.0) == LOW.rank
    assert effective_rank(LOW.rank, 30.0, 30.0) == NORMAL.rank
    assert effective_rank(LOW.rank, 60.0, 30.0) == URGENT.rank
    assert effective_rank(LOW.rank, 600.0, 30.0) == URGENT.rank
    assert effective_rank(NORMAL.rank, 600.0, None) == NORMAL.rank


async def test_the_gate_admits_its_waiters_by_priority(clock: LoopClock) -> None:
    gate = PriorityGate()
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with gate:
            await release.wait()

    async def enter(priority: Priority, name: str) -> None:
        call_priority.set(priority)
        async with gate:
            order.append(name)

    first = asyncio.create_task(holder())
    await clock.settle()
    waiting = []
    for priority, name in [(LOW, "low"), (NORMAL, "normal"), (URGENT, "urgent")]:
        waiting.append(asyncio.create_task(enter(priority, name)))
        await clock.settle()
    cancelled = asyncio.create_task(enter(URGENT, "gone"))
    await clock.settle()
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["urgent", "normal", "low"]
