"""Group commit of one job's product writes.

Products hand their writes (start, checkpoint, finish) to the job's writer and wait. The writer
writes whatever has gathered as one transaction (:func:`wipsvc.store.ledger_batch.write_batch`);
writes made while a transaction is on its way go into the next one, so the batches grow with the
load and a lone product waits for no timer. Once a batch has committed, its events are published in
`seq` order and then every product waiting on it goes on. Whoever made the writer hears of each
committed batch first (``on_commit``: the runner keeps its job's status from it).

A batch the store refuses for a reason of its own (a value it cannot store, say) is written again
one write at a time, so that only the product at fault fails; a lost lease or an outage fails
every write of the batch, as it would have failed each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from wipsvc.jobs.events import EventBus
from wipsvc.store import LeaseLost, ProgressEvent, is_outage
from wipsvc.store.lease import Lease
from wipsvc.store.ledger_batch import Committed, ItemFinish, LedgerWrite

# At most this many writes in one transaction: a batch is prepared, and its products go on, in one
# stretch of the event loop, which requests (a status poll, say) must not wait behind for long.
MAX_BATCH = 200

WriteBatch = Callable[[Lease, Sequence[LedgerWrite]], Awaitable[Committed]]
_Waiting = tuple[LedgerWrite, "asyncio.Future[ProgressEvent | None]"]


class LedgerWriter:
    def __init__(
        self,
        write_batch: WriteBatch,
        bus: EventBus,
        lease: Callable[[], Lease],
        on_commit: Callable[[Committed], None] = lambda _: None,
    ) -> None:
        self._write_batch = write_batch
        self._on_commit = on_commit
        self._bus = bus
        self._lease = lease  # the lease as last renewed: each batch renews it too
        self._pending: list[_Waiting] = []
        self._flushing: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written, for the curious (tests, benchmarks)

    async def write(self, write: LedgerWrite) -> ProgressEvent | None:
        """Store ``write`` with the others gathered meanwhile; a finish returns its event,
        already published. Raises what writing it raised."""
        future: asyncio.Future[ProgressEvent | None] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="wipsvc-ledger-writer")
        return await future

    async def aclose(self) -> None:
        """Wait for the writes already handed over (their products may have been cancelled)."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # products finishing in this same turn of the loop join in
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            await self._write([write for write, _ in batch], [future for _, future in batch])

    async def _write(
        self, writes: list[LedgerWrite], futures: list[asyncio.Future[ProgressEvent | None]]
    ) -> None:
        try:
            committed = await self._write_batch(self._lease(), writes)
        except Exception as error:
            if len(writes) == 1 or isinstance(error, LeaseLost) or is_outage(error):
                for future in futures:
                    _fail(future, error)
                return
            for write, future in zip(writes, futures, strict=True):  # find the one at fault
                await self._write([write], [future])
            return
        finally:
            self.batches += 1
        self._on_commit(committed)
        events = committed.events
        await self._bus.publish(events)
        by_product = {event.payload["current_product"]["wip_id"]: event for event in events}
        for write, future in zip(writes, futures, strict=True):
            if not future.done():
                future.set_result(by_product.get(write.wip_id) if isinstance(write, ItemFinish) else None)


def _fail(future: asyncio.Future[ProgressEvent | None], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
