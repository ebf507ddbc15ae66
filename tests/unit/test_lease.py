"""The self-fencing check: a call starts only while the lease is certainly valid for long enough."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from tests.support.clocks import ManualClock
from wipsvc.store import LeaseLost
from wipsvc.store.lease import DurationStats, Lease, LeaseGuard, effective_margin


def _guard(clock: ManualClock, *, seconds: float = 15.0, margin: float = 5.0) -> LeaseGuard:
    return LeaseGuard(Lease("job-1", "a", seconds, margin), clock=clock)


def test_a_renewal_is_certain_from_its_sending_time_for_the_lease_minus_the_margin() -> None:
    lease = Lease("job-1", "a", seconds=15.0, margin=5.0)
    assert lease.remaining(0.0) < 0  # not valid before its first renewal
    renewed = lease.renewed(sent_at=100.0)
    assert renewed.certain_until == 110.0
    assert renewed.remaining(104.0) == 6.0
    assert (renewed.job_id, renewed.owner, renewed.seconds) == ("job-1", "a", 15.0)


def test_the_margin_used_is_at_most_a_third_of_the_lease() -> None:
    assert effective_margin(15.0, 5.0) == 5.0
    assert effective_margin(3.0, 5.0) == 1.0


def test_p95_of_the_recent_durations() -> None:
    stats = DurationStats(window=100)
    assert stats.p95() == 0.0
    for seconds in range(1, 101):
        stats.add(float(seconds))
    assert stats.p95() == 95.0
    for _ in range(100):  # the window keeps only the recent ones
        stats.add(0.5)
    assert stats.p95() == 0.5


def test_p95_follows_the_window_as_old_durations_leave_it() -> None:
    rng = random.Random(14)
    stats, recent = DurationStats(window=20), list[float]()
    for _ in range(200):
        seconds = rng.choice([rng.uniform(0, 5), 1.0, -1.0])  # repeats, and negatives kept as 0
        stats.add(seconds)
        recent = [*recent, max(0.0, seconds)][-20:]
        ordered = sorted(recent)
        assert stats.p95() == ordered[math.ceil(0.95 * len(ordered)) - 1]


async def test_a_call_starts_only_while_the_remaining_certain_validity_exceeds_its_p95() -> None:
    clock = ManualClock()
    guard = _guard(clock)
    assert not guard.check("sheets_write")  # never renewed: nothing may start
    guard.renewed(guard.lease.renewed(sent_at=0.0))  # certainly valid until 10
    assert guard.check("sheets_write")
    for _ in range(20):
        guard.observe("sheets_write", 3.0)
    clock.now = 6.9  # 3.1 s left, more than the p95 of 3 s
    assert guard.check("sheets_write")
    assert guard.check("llm")  # another kind of call, with its own (unseen: 0 s) durations
    clock.now = 7.5  # 2.5 s left: a write could outlast the lease
    assert not guard.check("sheets_write")

    waiting = asyncio.create_task(guard.admit("sheets_write"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # it waits for the next renewal, not for time to pass
    guard.renewed(guard.lease.renewed(sent_at=5.0))  # certainly valid until 15: 7.5 s left
    await waiting
    assert guard.check("sheets_write")


async def test_a_waiting_call_asks_for_an_early_renewal_and_a_long_call_needs_half_the_span() -> None:
    clock = ManualClock()
    guard = _guard(clock)  # 15 s lease, 5 s margin: a renewal is certain for 10 s
    guard.observe("apps_script", 8.0)  # longer than half of that: it needs 5 s left, not 8
    assert guard.needed("apps_script") == 5.0
    guard.renewed(guard.lease.renewed(sent_at=0.0))  # certain until 10
    clock.now = 4.0
    assert guard.check("apps_script")  # 6 s left
    clock.now = 6.0  # 4 s left
    waiting = asyncio.create_task(guard.admit("apps_script"))
    await asyncio.sleep(0)
    assert guard.renewal_wanted.is_set()  # the lease keeper renews now instead of at its next round
    guard.renewal_wanted.clear()
    guard.renewed(guard.lease.renewed(sent_at=0.5))  # 4.5 s left: still not enough
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done() and guard.renewal_wanted.is_set()
    guard.renewed(guard.lease.renewed(sent_at=5.9))  # 9.9 s left
    await waiting


async def test_a_lost_lease_stops_the_waiting_calls_and_every_later_one() -> None:
    clock = ManualClock()
    guard = _guard(clock)
    waiting = asyncio.create_task(guard.admit("sheets_write"))
    await asyncio.sleep(0)
    guard.lose(LeaseLost("job job-1 is no longer owned by a"))
    with pytest.raises(LeaseLost):
        await waiting
    guard.renewed(guard.lease.renewed(sent_at=0.0))  # a late renewal changes nothing
    with pytest.raises(LeaseLost):
        guard.check("llm")
    with pytest.raises(LeaseLost):
        async with guard.fenced("llm"):
            raise AssertionError("a fenced call ran after the lease was lost")


async def test_fenced_calls_record_their_durations_failures_included() -> None:
    clock = ManualClock()
    guard = _guard(clock)
    guard.renewed(guard.lease.renewed(sent_at=0.0))
    async with guard.fenced("llm"):
        clock.now += 2.0

    async def failing_call() -> None:
        async with guard.fenced("llm"):
            clock.now += 4.0
            raise RuntimeError("timed out")

    with pytest.raises(RuntimeError):
        await failing_call()
    assert guard.p95("llm") == 4.0
