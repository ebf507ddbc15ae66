"""Quota buckets, driven by a controllable loop clock: no test waits for real time."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from tests.support.clocks import LoopClock
from tests.support.live import make_settings
from tests.support.windows import most_in_window
from wipsvc.limits import Limits, Permit, QuotaBucket
from wipsvc.limits.admission import call_admitted


async def worker(bucket: QuotaBucket, clock: LoopClock, log: list[tuple[float, float]], hold: float) -> None:
    while True:
        async with bucket.permit():
            started = clock.now
            await asyncio.sleep(hold)
            log.append((started, clock.now))


def spawn(n: int, factory: Callable[[], object]) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(factory()) for _ in range(n)]  # type: ignore[arg-type]


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("anchor", ["start", "finish"])
async def test_never_admits_more_than_its_limit_in_any_window(clock: LoopClock, anchor: str) -> None:
    bucket = QuotaBucket("writes", 10, 60.0, anchor=anchor)  # type: ignore[arg-type]
    log: list[tuple[float, float]] = []
    tasks = spawn(8, lambda: worker(bucket, clock, log, hold=2.0))
    await clock.advance(300)
    await stop(tasks)
    starts, ends = [s for s, _ in log], [e for _, e in log]
    # Wherever in [start, end] the server counts a call, no 60 s window sees more than 10.
    assert most_in_window(starts, 60) == 10
    if anchor == "finish":
        assert most_in_window(ends, 60) == 10
    # ...and the quota is used: 10 at once, then 10 per window (less one call's time per window).
    assert len(log) >= 45


async def test_first_calls_go_at_once_then_tokens_come_back_a_period_later(clock: LoopClock) -> None:
    bucket = QuotaBucket("reads", 3, 10.0)
    admitted: list[float] = []

    async def one() -> None:
        async with bucket.permit():
            admitted.append(clock.now)

    tasks = spawn(5, one)
    await clock.settle()
    assert admitted == [1_000.0] * 3
    assert bucket.snapshot()["waiting"] == 2 and bucket.snapshot()["available"] == 0
    await clock.advance(9.9)
    assert len(admitted) == 3
    await clock.advance(0.2)
    assert len(admitted) == 5 and admitted[3] == pytest.approx(1_010.0, abs=0.06)
    await stop(tasks)


async def test_a_burst_then_paced_calls_and_still_never_more_than_the_limit_per_window(
    clock: LoopClock,
) -> None:
    bucket = QuotaBucket("writes", 60, 60.0, anchor="finish", burst=3)
    log: list[tuple[float, float]] = []
    tasks = spawn(20, lambda: worker(bucket, clock, log, hold=0.3))
    await clock.settle()
    assert len(bucket.snapshot()) and bucket.snapshot()["in_flight"] == 3  # the burst
    await clock.advance(180, step=0.02)
    await stop(tasks)
    starts = sorted(s for s, _ in log)
    gaps = [b - a for a, b in itertools.pairwise(starts[3:20])]
    assert min(gaps) >= 1.0 - 0.03  # then one a second: no minute's quota spent in seconds
    assert most_in_window(starts, 1.0) <= 3
    assert most_in_window(starts, 60) <= 60 and most_in_window([e for _, e in log], 60) <= 60
    assert len(log) >= 170


async def test_a_429_pauses_every_waiter_then_the_rate_recovers(clock: LoopClock) -> None:
    bucket = QuotaBucket("writes", 100, 60.0, backoff=4.0, max_backoff=30.0, jitter=lambda: 0.0)
    refused = await bucket.acquire()
    assert refused.throttled() == 4.0  # no Retry-After: the backoff
    refused.release()
    admitted: list[float] = []

    async def one() -> None:
        async with bucket.permit():
            admitted.append(clock.now)

    tasks = spawn(5, one)
    await clock.advance(3.9)
    assert admitted == []  # nobody, not only the refused caller
    assert bucket.snapshot()["paused_for"] == pytest.approx(0.1, abs=0.01)
    await clock.advance(0.2)
    assert len(admitted) == 5  # the rate is back: the bucket still had room for all
    assert bucket.snapshot()["throttled"] == 1
    await stop(tasks)


async def test_backoff_grows_for_repeated_429s_and_resets_after_a_success(clock: LoopClock) -> None:
    bucket = QuotaBucket("writes", None, backoff=1.0, max_backoff=5.0, jitter=lambda: 0.0)
    delays = []
    for _ in range(4):
        permit = await _acquire_after_pause(bucket, clock)
        delays.append(permit.throttled())
        permit.release()
    assert delays == [1.0, 2.0, 4.0, 5.0]  # truncated at max_backoff
    ok = await _acquire_after_pause(bucket, clock)
    ok.release()  # went through: recovered
    first = await _acquire_after_pause(bucket, clock)
    second = await bucket.acquire()
    assert first.throttled() == 1.0
    # A call that was already out when the pause began is the same episode: no escalation.
    assert second.throttled() == 1.0
    assert bucket.throttles == 6


async def _acquire_after_pause(bucket: QuotaBucket, clock: LoopClock) -> Permit:
    task = asyncio.create_task(bucket.acquire())
    while not task.done():
        await clock.advance(0.5)
    return task.result()


async def test_retry_after_sets_the_pause(clock: LoopClock) -> None:
    bucket = QuotaBucket("llm", None, backoff=1.0, jitter=lambda: 0.0)
    async with bucket.permit() as permit:
        assert permit.throttled(retry_after=12.5) == 12.5
    waiter = asyncio.create_task(bucket.acquire())
    await clock.advance(12.4)
    assert not waiter.done()
    await clock.advance(0.2)
    assert waiter.done()
    waiter.result().release()


async def test_waiters_are_served_first_come_first_served_across_jobs(clock: LoopClock) -> None:
    bucket = QuotaBucket("writes", 6, 60.0, anchor="finish")
    served: list[str] = []

    async def job(name: str, workers: int) -> None:
        async def one() -> None:
            while True:
                async with bucket.permit():
                    served.append(name)
                    await asyncio.sleep(0.3)

        await asyncio.gather(*(one() for _ in range(workers)))

    big = asyncio.create_task(job("big", 12))
    await clock.advance(100)
    small = asyncio.create_task(job("small", 2))
    await clock.advance(0.1)
    before = len(served)
    await clock.advance(500)
    await stop([big, small])
    later = served[before:]
    # The late job's two requests queued behind at most the big job's 12: it is served within
    # the first 14 admissions, and then keeps its share (2 of every 14 waiters) — nobody starves.
    assert "small" in later[:14]
    share = later.count("small") / len(later)
    assert 2 / 14 - 0.05 <= share <= 2 / 14 + 0.05


async def test_equal_jobs_get_equal_shares(clock: LoopClock) -> None:
    bucket = QuotaBucket("llm", 10, 60.0)
    counts = {"a": 0, "b": 0}

    async def one(name: str) -> None:
        while True:
            async with bucket.permit():
                counts[name] += 1
                await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(one(name)) for name in ("a", "b") for _ in range(4)]
    await clock.advance(600)
    await stop(tasks)
    assert abs(counts["a"] - counts["b"]) <= 2 and counts["a"] + counts["b"] >= 100


async def test_a_cancelled_waiter_neither_blocks_others_nor_keeps_tokens(clock: LoopClock) -> None:
    bucket = QuotaBucket("writes", 1, 10.0, anchor="finish")
    holder = await bucket.acquire()
    first = asyncio.create_task(bucket.acquire())
    second = asyncio.create_task(bucket.acquire())
    await clock.settle()
    first.cancel()
    holder.release()
    await clock.advance(10.1)
    assert second.done() and first.cancelled()
    second.result().release()
    assert bucket.snapshot()["in_flight"] == 0


async def test_max_concurrent_caps_calls_in_flight(clock: LoopClock) -> None:
    bucket = QuotaBucket("apps_script", None, max_concurrent=3)
    log: list[tuple[float, float]] = []
    tasks = spawn(10, lambda: worker(bucket, clock, log, hold=3.0))
    await clock.advance(30)
    await stop(tasks)
    for start, _ in log:
        assert sum(1 for s, e in log if s <= start < e) <= 3
    assert len(log) >= 27


async def test_a_capped_bucket_tells_the_caller_when_its_call_is_admitted(clock: LoopClock) -> None:
    """The ETA learns when each product's call got one of the executions (not when it began to
    wait for one): the listener in the caller's context hears it, and only from a capped bucket."""
    capped = QuotaBucket("apps_script", None, max_concurrent=1)
    plain = QuotaBucket("sheets_write", 60, 60.0)
    heard: list[tuple[str, str, float]] = []

    async def call(name: str, bucket: QuotaBucket, hold: float) -> None:
        call_admitted.set(lambda bucket_name: heard.append((name, bucket_name, clock.now)))
        async with bucket.permit():
            await asyncio.sleep(hold)

    tasks = [
        asyncio.create_task(call("first", capped, 3.0)),
        asyncio.create_task(call("second", capped, 3.0)),
        asyncio.create_task(call("write", plain, 0.0)),
    ]
    await clock.advance(7)
    await stop(tasks)
    assert [(name, bucket) for name, bucket, _ in heard] == [
        ("first", "apps_script"),
        ("second", "apps_script"),
    ]
    assert heard[1][2] - heard[0][2] == pytest.approx(3.0, abs=0.1)  # when the first one's call ended


async def test_limits_follow_the_settings() -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///unused.db",
        sheets_write_per_minute=30,
        llm_tokens_per_minute=None,
        quota_period_seconds=6.0,
    )
    limits = Limits.from_settings(settings)
    assert limits.sheets_write.limit == 30 and limits.sheets_write.period == 6.0
    assert limits.sheets_write.anchor == "finish" and limits.sheets_read.limit == 60
    assert limits.llm_requests.limit == 500 and limits.llm_tokens.limit is None
    assert limits.apps_script.max_concurrent == 30
    snapshot = limits.snapshot()
    assert set(snapshot) == {"sheets_write", "sheets_read", "apps_script", "llm_requests", "llm_tokens"}
    assert (
        snapshot["sheets_write"] | {"available": 30, "waiting": 0, "throttled": 0} == snapshot["sheets_write"]
    )
    assert limits.paused_for() == 0.0


async def test_a_share_of_the_quota_is_all_this_instance_admits(clock: LoopClock) -> None:
    """Two instances busy at once: each admits half of the quota; alone again, all of it."""
    bucket = QuotaBucket("writes", 60, 60.0, anchor="finish", burst=6, max_concurrent=4)
    bucket.share(2)
    assert (bucket.limit, bucket.burst, bucket.max_concurrent, bucket.parts) == (30, 3, 2, 2)
    log: list[tuple[float, float]] = []
    tasks = spawn(10, lambda: worker(bucket, clock, log, hold=0.3))
    await clock.advance(180, step=0.02)
    starts = [s for s, _ in log]
    assert most_in_window(starts, 60) <= 30 and len(log) >= 80  # half the quota, and all of that half
    shared = len(log)
    bucket.share(1)  # the other instance went idle
    await clock.advance(120, step=0.02)
    await stop(tasks)
    assert most_in_window([s for s, _ in log], 60) <= 60
    assert len(log) - shared >= 100  # now at the whole quota's pace
    assert bucket.snapshot()["shared_by"] == 1


async def test_limits_are_shared_among_instances() -> None:
    settings = make_settings("sqlite+aiosqlite:///unused.db", sheets_write_per_minute=60)
    limits = Limits.from_settings(settings)
    limits.share_among(3)
    assert limits.sheets_write.limit == 20 and limits.llm_requests.limit == 500 // 3
    assert limits.apps_script.max_concurrent == 10 and limits.llm_tokens.limit is None  # none stays none
    limits.share_among(1)
    assert limits.sheets_write.limit == 60 and limits.apps_script.max_concurrent == 30


async def test_a_waiter_larger_than_a_shrunken_share_is_still_served(clock: LoopClock) -> None:
    bucket = QuotaBucket("tokens", 100, 10.0)
    held = await bucket.acquire(30)
    waiter = asyncio.create_task(bucket.acquire(80))  # must wait: 30 + 80 > 100
    await clock.settle()
    bucket.share(2)  # now 50 a period: 80 could never fit, so it is capped like any request
    held.release()
    await clock.advance(10.1)
    assert waiter.done()  # not stuck at the head of the queue, blocking everyone behind it
    permit = waiter.result()
    assert permit.amount == 50 and bucket.snapshot()["waiting"] == 0


async def test_a_capped_waiter_takes_its_whole_request_once_the_share_grows_back(clock: LoopClock) -> None:
    bucket = QuotaBucket("tokens", 100, 10.0)
    held = await bucket.acquire(30)
    waiter = asyncio.create_task(bucket.acquire(80))
    await clock.settle()
    bucket.share(2)  # capped at 50 while the quota is shared...
    bucket.share(1)  # ...and whole again before its turn came: it counts all 80 tokens
    held.release()
    await clock.advance(10.1)
    assert waiter.done() and waiter.result().amount == 80


def test_most_in_window_counts_what_a_quota_window_would() -> None:
    # A window holds [start, start + 60): 0 and 60 never share one, 59.9 and 60.5 do.
    assert most_in_window([60.5, 0, 59.9, 60, 200], 60) == 3
    assert most_in_window([0, 60, 120], 60) == 1
    assert most_in_window([], 60) == 0
