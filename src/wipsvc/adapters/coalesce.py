"""Write coalescing: items that become ready within a short window go out as one request.

The Sheets quota counts requests, not cells: one ``values.batchUpdate`` (or one ``values.append`` of
several rows) costs what one product's write costs. So the first item of a batch starts its flush at
once, and the flush takes the items (:meth:`Batch.take`) once it holds a quota token *and* ``window``
seconds have passed since that first item: waiting for the token and for the window overlap. Every
item that arrives meanwhile rides along, so the busier the resource, the larger the batches and the
fewer tokens each product costs.

A failed flush fails only the items of that batch. A permanent error of a batch of several items is
retried item by item (``isolate``), so one bad product does not fail the others with it; transient
errors go back to every item, whose own step retry submits it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Batch(Generic[T]):
    """Items gathered for one request."""

    def __init__(self, items: list[T] | None = None) -> None:
        self._items: list[T] = items or []
        self.taken = False
        self.ready = asyncio.Event()  # the window is over, or the batch is full
        if items is not None:
            self.ready.set()

    def add(self, item: T) -> None:
        self._items.append(item)

    def __len__(self) -> int:
        return len(self._items)

    async def take(self) -> list[T]:
        """Wait for the window to end, then close the batch (later items open a new one)."""
        await self.ready.wait()
        return self.cut()

    def cut(self) -> list[T]:
        self.taken = True
        return list(self._items)


Flush = Callable[[Batch[T]], Awaitable[Sequence[R]]]


class Coalescer(Generic[T, R]):
    """``await coalescer.submit(item)`` returns the item's result from the batch it went out in."""

    def __init__(
        self,
        flush: Flush[T, R],
        *,
        window: float,
        max_items: int = 200,
        isolate: Callable[[BaseException], bool] = lambda _: False,
        name: str = "batch",
    ) -> None:
        if window < 0 or max_items < 1:
            raise ValueError("window must be >= 0 and max_items >= 1")
        self._flush = flush
        self.window = window
        self.max_items = max_items
        self._isolate = isolate
        self._name = name
        self._open: Batch[T] | None = None
        self._futures: dict[Batch[T], list[asyncio.Future[R]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # flushes sent (isolated retries included)

    async def submit(self, item: T) -> R:
        batch = self._open
        if batch is None or batch.taken or len(batch) >= self.max_items:
            batch = self._open = Batch()
            self._futures[batch] = []
            task = asyncio.create_task(self._run(batch), name=f"wipsvc-coalesce-{self._name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        batch.add(item)
        self._futures[batch].append(future)
        if len(batch) >= self.max_items:
            batch.ready.set()
        return await future

    async def _run(self, batch: Batch[T]) -> None:
        futures = self._futures[batch]
        timer = asyncio.get_running_loop().call_later(self.window, batch.ready.set)
        try:
            await self._send(batch, futures)
        except asyncio.CancelledError:
            _settle_error(futures, RuntimeError(f"{self._name} flush was cancelled"))
            raise
        finally:
            timer.cancel()
            del self._futures[batch]
            if self._open is batch:
                self._open = None

    async def _send(self, batch: Batch[T], futures: list[asyncio.Future[R]]) -> None:
        self.batches += 1
        try:
            results = await self._flush(batch)
        except Exception as error:
            items = batch.cut()  # the flush may have failed before taking: the batch is closed now
            if len(items) > 1 and self._isolate(error):
                log.info("%s of %d failed (%s); retrying item by item", self._name, len(items), error)
                for item, future in zip(items, futures, strict=False):
                    await self._send(Batch([item]), [future])
                return
            _settle_error(futures, error)
            return
        if len(results) != len(futures):
            _settle_error(futures, RuntimeError(f"{self._name} flush answered {len(results)} results"))
            return
        for future, result in zip(futures, results, strict=True):
            if not future.done():  # its submitter may have been cancelled meanwhile
                future.set_result(result)

    async def aclose(self) -> None:
        """Stop pending flushes; their submitters get an error."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _settle_error(futures: list[asyncio.Future[R]], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)
