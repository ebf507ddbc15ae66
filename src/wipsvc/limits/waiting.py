"""The order in which calls waiting for a quota token are served: by priority, FIFO within a
class, with ageing so that no waiter starves (see :mod:`wipsvc.domain.priority`).

A call's priority is its job's, read from :data:`call_priority` when the call starts to wait.
A context variable rather than a parameter: the job runner sets it once for the tasks of its
job (tasks inherit their creator's context), and every adapter and coalescer in between — Sheets,
Apps Script, the LLM, each with its own buckets — passes it on without knowing it exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import count
from typing import Generic, TypeVar

from wipsvc.domain.priority import Priority, effective_rank

call_priority: ContextVar[Priority] = ContextVar("wipsvc_call_priority", default=Priority.NORMAL)

T = TypeVar("T")


@dataclass(slots=True)
class _Entry(Generic[T]):
    item: T
    rank: int
    since: float
    seq: int


@dataclass(slots=True)
class WaitQueue(Generic[T]):
    """Waiters ordered by (effective rank, arrival). Effective rank is the waiter's own, raised
    one class per ``ageing`` seconds waited: with ageing, a low waiter ranks as urgent after
    ``2 * ageing`` seconds, and then only the waiters that arrived before it go first.
    Linear scans: a bucket has at most a few hundred waiters (its jobs' products in flight)."""

    ageing: float | None = None
    _entries: list[_Entry[T]] = field(default_factory=list)
    _seq: Iterator[int] = field(default_factory=count)

    def push(self, item: T, now: float, priority: Priority | None = None) -> None:
        rank = (priority if priority is not None else call_priority.get()).rank
        self._entries.append(_Entry(item, rank, now, next(self._seq)))

    def discard(self, gone: Callable[[T], bool]) -> None:
        """Forget the waiters that left (cancelled, or served elsewhere)."""
        if any(gone(entry.item) for entry in self._entries):
            self._entries = [entry for entry in self._entries if not gone(entry.item)]

    def first(self, now: float) -> T | None:
        """The waiter to serve next, left in the queue."""
        entry = self._first(now)
        return entry.item if entry is not None else None

    def pop(self, now: float) -> T | None:
        entry = self._first(now)
        if entry is None:
            return None
        self._entries.remove(entry)
        return entry.item

    def _first(self, now: float) -> _Entry[T] | None:
        return min(
            self._entries,
            key=lambda e: (effective_rank(e.rank, now - e.since, self.ageing), e.seq),
            default=None,
        )

    def __iter__(self) -> Iterator[T]:
        return (entry.item for entry in self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class PriorityGate:
    """A lock whose waiters acquire it in :class:`WaitQueue` order (asyncio's Lock is FIFO)."""

    def __init__(self, ageing: float | None = None) -> None:
        self._queue: WaitQueue[asyncio.Future[None]] = WaitQueue(ageing)
        self._held = False

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._held:
            self._held = True
            return
        future: asyncio.Future[None] = loop.create_future()
        self._queue.push(future, loop.time())
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._pass_on()  # it was ours already: hand it to the next
            raise

    async def __aexit__(self, *_: object) -> None:
        self._pass_on()

    def _pass_on(self) -> None:
        self._queue.discard(lambda f: f.done())
        following = self._queue.pop(asyncio.get_running_loop().time())
        if following is None:
            self._held = False
        else:
            following.set_result(None)  # stays held, now by the waiter woken
