"""A job's lease as its owner sees it, and the self-fencing check made before outside effects.

The database decides who owns a job: a lease expires at the database's `now()` at renewal plus
the lease time. The owner cannot ask the database before every Sheets write, Apps Script run or
LLM call, so it keeps its own bound on its own monotonic clock: the lease is *certainly* valid
until the moment the renewal was sent plus the lease time minus a safety margin. The renewal
reached the database after it was sent, so the database's expiry is later still, by at least the
margin (as long as the two clocks drift apart by less than the margin over one lease time).

:class:`LeaseGuard` admits a call only while the remaining certain validity exceeds the call's
observed p95 duration; otherwise the call asks for an early renewal and waits for it, and if the
lease is lost it raises :class:`LeaseLost` so that the product stops without writing. A kind of call
that takes longer than half the certain span (lease minus margin) needs only half of it: such a
call starts right after a renewal, and could never start otherwise.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from wipsvc.store.records import LeaseLost

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Lease:
    """One owner's hold on one job: ``certain_until`` is on the owner's monotonic clock."""

    job_id: str
    owner: str
    seconds: float
    margin: float
    certain_until: float = float("-inf")

    def renewed(self, sent_at: float) -> Lease:
        """The lease after a renewal sent at ``sent_at`` (monotonic) succeeded."""
        return replace(self, certain_until=sent_at + self.seconds - self.margin)

    def remaining(self, now: float) -> float:
        return self.certain_until - now

    @property
    def span(self) -> float:
        """How long a renewal makes the lease certainly valid."""
        return self.seconds - self.margin


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What a heartbeat learns: the lease as the owner now knows it, and whether the job's
    cancellation was requested meanwhile."""

    lease: Lease
    cancel_requested: bool


def effective_margin(lease_seconds: float, margin: float) -> float:
    """The safety margin used: at most a third of the lease, so that a renewal every third of
    the lease always leaves some certain validity."""
    return min(margin, lease_seconds / 3)


class DurationStats:
    """The recent durations of one kind of call, for its p95 (0 until one is seen)."""

    def __init__(self, window: int = 100) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        # The same durations kept in order: every call's admission asks for the p95, and sorting
        # the window each time made a product's calls dearer once the window had filled.
        self._ordered: list[float] = []

    def add(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if len(self._recent) == self._recent.maxlen:
            del self._ordered[bisect.bisect_left(self._ordered, self._recent[0])]
        self._recent.append(seconds)
        bisect.insort(self._ordered, seconds)

    def p95(self) -> float:
        if not self._ordered:
            return 0.0
        return self._ordered[max(0, math.ceil(0.95 * len(self._ordered)) - 1)]


class LeaseGuard:
    """The self-fencing check shared by every outside call of one job."""

    def __init__(self, lease: Lease, *, clock: Clock = time.monotonic) -> None:
        self._lease = lease
        self._clock = clock
        self._lost: LeaseLost | None = None
        self._renewal = asyncio.Event()  # set (and replaced) at every renewal or loss
        self.renewal_wanted = asyncio.Event()  # a call waits: the lease keeper renews now
        self._durations: dict[str, DurationStats] = {}

    @property
    def lease(self) -> Lease:
        return self._lease

    def now(self) -> float:
        return self._clock()

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def certainly_held(self) -> bool:
        """Not lost, and certainly valid by this owner's clock now."""
        return self._lost is None and self._lease.remaining(self._clock()) > 0

    def renewed(self, lease: Lease) -> None:
        self._lease = lease
        self._wake()

    def lose(self, error: LeaseLost) -> None:
        self._lost = error
        self._wake()

    def _wake(self) -> None:
        self._renewal.set()
        self._renewal = asyncio.Event()

    def p95(self, kind: str) -> float:
        stats = self._durations.get(kind)
        return stats.p95() if stats is not None else 0.0

    def needed(self, kind: str) -> float:
        """The certain validity a call of ``kind`` needs left to start."""
        return min(self.p95(kind), self._lease.span / 2)

    def observe(self, kind: str, seconds: float) -> None:
        self._durations.setdefault(kind, DurationStats()).add(seconds)

    def check(self, kind: str) -> bool:
        """Whether a call of ``kind`` may start now; raises LeaseLost once the lease is lost."""
        if self._lost is not None:
            raise LeaseLost(str(self._lost))
        return self._lease.remaining(self._clock()) > self.needed(kind)

    async def admit(self, kind: str) -> None:
        """Return when a call of ``kind`` may start: at once, or after the next renewal."""
        while not self.check(kind):
            self.renewal_wanted.set()
            await self._renewal.wait()

    @contextlib.asynccontextmanager
    async def fenced(self, kind: str) -> AsyncIterator[None]:
        """Admit one call of ``kind`` and record how long it took (failures included)."""
        await self.admit(kind)
        started = self._clock()
        try:
            yield
        finally:
            self.observe(kind, self._clock() - started)
