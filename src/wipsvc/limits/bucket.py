"""Quota buckets: one per external resource (Sheets writes and reads, Apps Script, LLM requests and
tokens), shared by every job of the process, so that all jobs together stay within each quota.

A :class:`QuotaBucket` holds ``limit`` tokens. A call takes tokens before it starts; they come back
``period`` seconds after the call *started* (``anchor="start"``) or *ended* (``anchor="finish"``).
So no window of ``period`` seconds ever sees more than ``limit`` calls begin; with ``finish`` that
holds wherever between sending and answering the server counts the call, which is what makes
"zero 429s at Google's nominal quota" a guarantee rather than a hope (it costs one request latency
per period).

``burst`` paces the calls as well: at most ``burst`` at once after a quiet spell, then one every
``period / limit`` (a GCRA, i.e. a leaky bucket). Without it the first ``limit`` calls may all go
at once, which a per-minute quota allows, but the window then returns its tokens just as bunched:
a busy service would spend a minute's quota in seconds and stall for the rest of the minute. Paced,
the calls that wait for a token gather into one coalesced request (see ``adapters/coalesce.py``).

Why not aiolimiter as it is: its leaky bucket refills continuously with a burst of ``max_rate``, so
one minute can see up to twice the quota (60 at once, then 59 more as it drains); with ``max_rate=1``
it paces evenly but a call whose request arrives late still lands 61 in one of Google's windows. It
also wakes the smallest request first (a large token request can starve), and knows nothing of 429s.
This class keeps its shape: the loop's clock, waiters as futures woken by ``loop.call_at`` timers,
no polling. It adds priority order, FIFO within a priority (fairness between jobs; see
``limits/waiting.py``), completion-anchored tokens, an optional
concurrency cap (Apps Script runs at most 30 executions per user), and back-pressure: a 429 pauses
the whole resource, for ``Retry-After`` or Google's truncated exponential backoff, then the bucket
goes on at its configured rate.

(Over 300 lines: admission, waking and back-pressure share the bucket's state and timer.)
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from types import TracebackType
from typing import Any, Literal, Self

from wipsvc.limits.admission import tell_admitted
from wipsvc.limits.waiting import WaitQueue

Anchor = Literal["start", "finish"]


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # a snapshot taken outside the loop (e.g. from a thread)
        return time.monotonic()


class Permit:
    """One admitted call. ``async with bucket.permit() as permit:`` releases it when the call ends."""

    __slots__ = ("_bucket", "_released", "admitted_at", "amount", "outer", "throttled_once", "token")

    def __init__(self, bucket: QuotaBucket, amount: int, admitted_at: float, token: str = "") -> None:
        self._bucket = bucket
        self.amount = amount
        self.admitted_at = admitted_at
        self.throttled_once = False
        self._released = False
        self.token = token  # names the call in a shared (Redis) bucket
        self.outer: Permit | None = None  # the same call's permit of an enclosing (per-project) bucket

    def throttled(self, retry_after: float | None = None) -> float:
        """Report a 429 for this call: pauses the whole resource; returns the pause in seconds."""
        self.throttled_once = True
        return self._bucket._throttled(self, retry_after)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._bucket._release(self)
            if self.outer is not None:
                self.outer.release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@dataclass(slots=True)
class _Waiter:
    amount: int  # what it will take: `requested`, capped at the limit in force
    future: asyncio.Future[Permit]
    requested: int


class QuotaBucket:
    def __init__(
        self,
        name: str,
        limit: int | None,
        period: float = 60.0,
        *,
        anchor: Anchor = "start",
        max_concurrent: int | None = None,
        burst: int | None = None,
        backoff: float = 1.0,
        max_backoff: float = 32.0,
        jitter: Callable[[], float] = random.random,
        enclosing: QuotaBucket | None = None,
        ageing: float | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1 (or None for no limit)")
        if period <= 0:
            raise ValueError("period must be positive")
        self.name = name
        self.period = period
        self.enclosing = enclosing
        self.anchor: Anchor = anchor
        # As configured: the quota of the whole account. `share` may give this process a part.
        self._quota, self._quota_concurrent, self._quota_burst = limit, max_concurrent, burst
        self.parts = 1
        self.limit = limit
        self.max_concurrent = max_concurrent
        self.burst: int | None = None
        self._spacing = 0.0
        self._apply_share()
        self._next_free = float("-inf")  # GCRA's theoretical arrival time
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._jitter = jitter  # in [0, 1): Google's random_ms, as a fraction of `backoff`
        self._returning: list[tuple[float, int, int]] = []  # heap of (tokens back at, seq, amount)
        self._returning_total = 0
        self._held = 0  # tokens of finish-anchored calls still running
        self._in_flight = 0
        self._seq = count()
        # Served by the priority of the calling job (urgent first), raised by `ageing` seconds waited.
        self._waiters: WaitQueue[_Waiter] = WaitQueue(ageing)
        self._timer: asyncio.TimerHandle | None = None
        self._paused_until = float("-inf")
        self._pause_started = float("-inf")
        self._streak = 0
        self.admitted = 0
        self.throttles = 0

    # -- sharing the quota with other instances ---------------------------------------------------
    def share(self, parts: int) -> None:
        """Use one ``parts``-th of the configured quota (rate, burst and concurrency): the rest is
        for the other instances that call the same account's API at the same time. Each part is
        at least 1, so more instances than a quota's size exceed it together."""
        parts = max(1, parts)
        if parts != self.parts:
            self.parts = parts
            self._apply_share()
            for waiter in self._waiters:  # as `acquire` caps a request at the limit in force
                waiter.amount = waiter.requested if self.limit is None else min(waiter.requested, self.limit)
            self._wake()  # a larger share may admit waiters now; a smaller one re-times the wait

    def _apply_share(self) -> None:
        def part(value: int | None) -> int | None:
            return None if value is None else max(1, value // self.parts)

        self.limit, self.max_concurrent = part(self._quota), part(self._quota_concurrent)
        burst = part(self._quota_burst)
        self.burst = burst if self.limit is not None and burst is not None and burst < self.limit else None
        self._spacing = self.period / self.limit if self.limit is not None else 0.0

    # -- taking tokens ----------------------------------------------------------------------------
    async def acquire(self, amount: int = 1) -> Permit:
        """Wait (by priority, then FIFO) until ``amount`` tokens are free and the resource is not
        paused; then, with an enclosing bucket (Google's per-project quota above a user's), for its
        tokens too."""
        permit = await self._acquire_own(amount)
        if self.max_concurrent is not None:
            tell_admitted(self.name)
        if self.enclosing is None:
            return permit
        try:
            permit.outer = await self.enclosing.acquire(amount)
        except BaseException:
            permit.release()
            raise
        return permit

    async def _acquire_own(self, amount: int) -> Permit:
        requested = max(0, amount)
        amount = min(requested, self.limit) if self.limit is not None else requested
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._has_waiters() and self._can_admit(amount, now):
            return self._admit(amount, now)
        future: asyncio.Future[Permit] = loop.create_future()
        self._waiters.push(_Waiter(amount, future, requested), now)
        self._wake()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.result().release()  # admitted, but our caller is gone: give the tokens back
            self._wake()  # the next waiter may fit now
            raise

    def permit(self, amount: int = 1) -> _PermitContext:
        """``async with bucket.permit(n) as permit:`` — acquire, and release when the block ends."""
        return _PermitContext(self, amount)

    def _has_waiters(self) -> bool:
        self._waiters.discard(lambda waiter: waiter.future.done())
        return bool(self._waiters)

    def _can_admit(self, amount: int, now: float) -> bool:
        if now < self._paused_until:
            return False
        if self.max_concurrent is not None and self._in_flight >= self.max_concurrent:
            return False
        if self.limit is None:
            return True
        if self.burst is not None and now < self._next_free - (self.burst - 1) * self._spacing:
            return False
        self._expire(now)
        return self._held + self._returning_total + amount <= self.limit

    def _expire(self, now: float) -> None:
        while self._returning and self._returning[0][0] <= now:
            _, _, amount = heapq.heappop(self._returning)
            self._returning_total -= amount

    def _admit(self, amount: int, now: float) -> Permit:
        self._in_flight += 1
        self.admitted += 1
        if self.burst is not None:
            self._next_free = max(self._next_free, now) + amount * self._spacing
        if self.limit is not None:
            if self.anchor == "start":
                self._give_back_at(now + self.period, amount)
            else:
                self._held += amount
        return Permit(self, amount, now)

    def _give_back_at(self, when: float, amount: int) -> None:
        heapq.heappush(self._returning, (when, next(self._seq), amount))
        self._returning_total += amount

    def _release(self, permit: Permit) -> None:
        self._in_flight -= 1
        now = _now()
        if self.limit is not None and self.anchor == "finish":
            self._held -= permit.amount
            self._give_back_at(now + self.period, permit.amount)
        if not permit.throttled_once and permit.admitted_at > self._pause_started:
            self._streak = 0  # a call admitted after the last pause went through: recovered
        self._wake()

    # -- waking waiters -----------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = _now()
        head = self._waiters.first(now) if self._has_waiters() else None
        while head is not None and self._can_admit(head.amount, now):
            self._waiters.pop(now)
            head.future.set_result(self._admit(head.amount, now))
            head = self._waiters.first(now)
        if head is not None:
            when = self._next_chance(head.amount, now)
            if when is not None:
                self._timer = asyncio.get_running_loop().call_at(when, self._wake)

    def _next_chance(self, amount: int, now: float) -> float | None:
        """When the head waiter may fit; None when only a running call's end can free room."""
        if now < self._paused_until:
            return self._paused_until
        if self.max_concurrent is not None and self._in_flight >= self.max_concurrent:
            return None
        if self.limit is None:
            return now
        paced = self._next_free - (self.burst - 1) * self._spacing if self.burst is not None else now
        if paced > now:
            return paced
        excess = self._held + self._returning_total + amount - self.limit
        for when, _, back in sorted(self._returning):
            excess -= back
            if excess <= 0:
                return when
        return None

    # -- back-pressure ------------------------------------------------------------------------------
    def _throttled(self, permit: Permit | None, retry_after: float | None) -> float:
        now = _now()
        self.throttles += 1
        if permit is None or permit.admitted_at > self._pause_started:
            self._streak += 1  # refused although admitted after the last pause: back off further
        if retry_after is not None and retry_after >= 0:
            delay = retry_after
        else:
            steps = max(self._streak, 1) - 1
            delay = min(self.backoff * 2**steps + self._jitter() * self.backoff, self.max_backoff)
        self._pause_until(now, now + delay)
        return delay

    def _pause_until(self, now: float, until: float) -> None:
        if until > self._paused_until:
            if now >= self._paused_until:
                self._pause_started = now
            self._paused_until = until
        self._wake()

    # -- state --------------------------------------------------------------------------------------
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - _now())

    def snapshot(self) -> dict[str, Any]:
        """Rate, tokens free now, calls running and waiting, 429s so far, pause left."""
        now = _now()
        self._expire(now)
        available = None
        if self.limit is not None:
            available = max(0, self.limit - self._held - self._returning_total)
        return {
            "limit": self.limit,
            "shared_by": self.parts,
            "period_seconds": self.period,
            "max_concurrent": self.max_concurrent,
            "burst": self.burst,
            "available": available,
            "in_flight": self._in_flight,
            "waiting": sum(1 for w in self._waiters if not w.future.done()),
            "admitted": self.admitted,
            "throttled": self.throttles,
            "paused_for": round(self.paused_for(), 3),
        }

    def __repr__(self) -> str:
        return f"<QuotaBucket {self.name} {self.snapshot()}>"


class _PermitContext:
    __slots__ = ("_amount", "_bucket", "_permit")

    def __init__(self, bucket: QuotaBucket, amount: int) -> None:
        self._bucket = bucket
        self._amount = amount
        self._permit: Permit | None = None

    async def __aenter__(self) -> Permit:
        self._permit = await self._bucket.acquire(self._amount)
        return self._permit

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._permit is not None:
            self._permit.release()
