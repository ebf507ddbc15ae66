"""Runs one job: its products through the pipeline, as many at once as the quotas admit
(`workers_per_job` is a ceiling, the batch size by default).

A runner can also be paused (the instance is shutting down): it starts no new product, lets
each product in flight finish its current step and checkpoint it, and returns leaving the
job running, for the registry to hand it over (see `JobRegistry.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from wipsvc import logs
from wipsvc.adapters.base import Backends
from wipsvc.config import Settings
from wipsvc.domain.statuses import ItemStatus, JobStatus, Step
from wipsvc.jobs.eta import EtaEstimator
from wipsvc.jobs.events import EventBus
from wipsvc.jobs.ledger_writer import LedgerWriter
from wipsvc.jobs.live_status import LiveStatus
from wipsvc.jobs.observer import RunnerObserver
from wipsvc.jobs.product_run import ProductRun
from wipsvc.limits import Limits
from wipsvc.limits.waiting import call_priority
from wipsvc.pipeline.fence import fenced_backends
from wipsvc.pipeline.prefetch import PageFetcher, PrefetchingFetcher
from wipsvc.pipeline.retry import RetryPolicy, with_retries
from wipsvc.store import ItemRecord, JobRecord, LeaseLost, Store, describe_error
from wipsvc.store.lease import Lease, LeaseGuard, effective_margin
from wipsvc.store.ledger_batch import Committed

log = logging.getLogger(__name__)

OpenBackends = Callable[[JobRecord], Awaitable[Backends]]
Outcome = tuple[JobStatus, str | None] | None  # None: paused with products left


def _queues(limits: Limits | None) -> dict[str, int]:
    """Steps whose external service runs a fixed number of calls at once, for the ETA."""
    capacity = limits.apps_script.max_concurrent if limits is not None else None
    return {Step.CLEAN.value: capacity} if capacity is not None else {}


class JobRunner:
    def __init__(
        self,
        job: JobRecord,
        *,
        store: Store,
        bus: EventBus,
        settings: Settings,
        owner: str,
        open_backends: OpenBackends,
        retry: RetryPolicy,
        observer: RunnerObserver | None = None,
        fetcher: PageFetcher | None = None,
    ) -> None:
        self.job = job
        # The backends' page fetcher: the first pages are read while the backends open.
        self._prefetcher = PrefetchingFetcher(fetcher) if fetcher is not None else None
        self._fetcher = fetcher
        self._store = store
        self._bus = bus
        self._settings = settings
        self._owner = owner
        self._open_backends = open_backends
        self._retry = retry
        self._lease = settings.lease_seconds
        self._observer = observer
        self._cancel = asyncio.Event()
        self._pausing = asyncio.Event()
        self._halt = asyncio.Event()  # set by cancel or pause: no new product starts
        self._interrupted = 0  # products paused between two steps
        self._stop_lease = asyncio.Event()
        margin = effective_margin(settings.lease_seconds, settings.lease_safety_margin_seconds)
        # Not valid until the first renewal says so (run() renews before anything else).
        self._guard = LeaseGuard(Lease(job.job_id, owner, settings.lease_seconds, margin))
        self._live: LiveStatus | None = None  # the job as last committed, while it runs here

    def cancel(self) -> None:
        """Start no new product; those in flight finish. Called once the request is committed."""
        self._cancel.set()
        self._halt.set()
        if self._live is not None:
            self._live.cancel_requested()

    def status(self) -> tuple[JobRecord, str] | None:
        """The job and its results JSON as this runner last committed them (see `LiveStatus`);
        None when only the database knows."""
        return self._live.current() if self._live is not None else None

    def renew_soon(self) -> None:
        """Renew the lease now rather than at its next turn (it also picks up a cancel request)."""
        self._guard.renewal_wanted.set()

    def pause(self) -> None:
        """Start no new product; those in flight stop once their current step is checkpointed."""
        self._pausing.set()
        self._halt.set()

    @property
    def lease(self) -> Lease:
        """The job's lease as this runner last renewed it."""
        return self._guard.lease

    def _should_pause(self) -> bool:
        return self._pausing.is_set() and not self._cancel.is_set()

    async def run(self) -> None:
        job_id = self.job.job_id
        logs.bind_job(job_id, self.job.collection_name)
        # Every quota bucket this job's calls wait at serves them by the job's priority: set once
        # here, in the job's own task, and inherited by the worker tasks it creates, so that the
        # adapters in between need no priority parameter (see `limits/waiting.py`).
        call_priority.set(self.job.priority)
        try:
            await self._renew()
            await self._bus.publish([await self._store.jobs.mark_started(self._guard.lease)])
            await self._keep_status()
            outcome = await self._run_products()
            if outcome is None:
                log.info("job %s paused; the instance that takes it over resumes it", job_id)
                return
            status, error = outcome
            ended = await self._store.jobs.finish(self._guard.lease, status, error)
            self._live = None  # ended: the database has it all
            await self._bus.publish([ended])
        except LeaseLost:
            log.warning("job %s was taken over by another instance; stopping here", job_id)
        finally:
            self._live = None

    async def _keep_status(self) -> None:
        """Read the job once as it starts here; from now on its own writes keep it current."""
        job_id = self.job.job_id
        try:
            job = await self._store.jobs.get(job_id)
            results = await self._store.jobs.finished_results(job_id)
        except Exception as error:  # polls read the database instead, as they would anyway
            log.warning("job %s: could not read its status to keep: %s", job_id, describe_error(error))
            return
        if job is not None:
            self._live = LiveStatus(job, results, self._guard.certainly_held)
            if self._cancel.is_set():  # a cancel that came while the job was being read
                self._live.cancel_requested()

    async def _run_products(self) -> Outcome:
        # The lease is renewed from the start: opening the backends may take a while (Google's
        # backoff, retries), and an unrenewed lease would let another claim take the job meanwhile.
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._keep_lease())
                try:
                    return await self._open_and_work(group)
                finally:
                    self._stop_lease.set()
                    self._guard.renewal_wanted.set()  # wakes the lease keeper to stop
                    if self._prefetcher is not None:
                        await self._prefetcher.cancel()
        except* LeaseLost as lost:
            raise lost.exceptions[0] from None

    async def _open_and_work(self, group: asyncio.TaskGroup) -> Outcome:
        items = await self._store.jobs.items(self.job.job_id)
        todo = [item for item in items if item.status in (ItemStatus.PENDING, ItemStatus.RUNNING)]
        products = await self._store.collections.get_products(
            self.job.collection_name, [i.wip_id for i in todo]
        )
        if self._cancel.is_set():  # cancelled before it started: nothing to open
            return JobStatus.CANCELLED, None
        if self._pausing.is_set():
            return None
        ceiling = self._settings.workers_per_job or self._settings.max_batch
        if self._prefetcher is not None:
            unread = [i for i in todo if i.step in (None, Step.SHEET_ROW.value) and i.wip_id in products]
            self._prefetcher.prefetch(products[item.wip_id].url for item in unread[:ceiling])
        try:
            backends = await with_retries(
                lambda: self._open_backends(self.job),
                self._retry,
                f"opening the backends of job {self.job.job_id}",
                give_up=self._halt.is_set,
            )
        except Exception as error:
            if self._cancel.is_set():
                return JobStatus.CANCELLED, None
            if self._pausing.is_set():
                return None
            log.exception("job %s could not open its backends", self.job.job_id)
            return JobStatus.FAILED, f"could not open the collection's backends: {describe_error(error)}"
        worker_tasks: list[asyncio.Task[None]] = []
        queue: asyncio.Queue[ItemRecord] = asyncio.Queue()
        writer = LedgerWriter(
            self._store.jobs.write_batch, self._bus, lambda: self._guard.lease, on_commit=self._committed
        )
        try:
            for item in todo:
                queue.put_nowait(item)
            urls = {wip_id: product.url for wip_id, product in products.items()}
            if self._prefetcher is not None and backends.fetcher is self._fetcher:
                backends = replace(backends, fetcher=self._prefetcher)
            workers = min(ceiling, len(todo)) or 1
            limits = backends.limits
            backends = fenced_backends(backends, self._guard)
            eta = EtaEstimator(
                len(todo),
                time.monotonic,
                workers=workers,
                gap=self._settings.product_delay_seconds,
                paused_for=limits.paused_for if limits is not None else None,
                queues=_queues(limits),
            )
            products_run = ProductRun(
                self.job.job_id,
                writer,
                self._retry,
                should_pause=self._should_pause,
                observer=self._observer,
            )
            worker_tasks += [
                group.create_task(self._work(queue, backends, urls, eta, products_run))
                for _ in range(workers)
            ]
            await asyncio.gather(*worker_tasks)
            if any(item.status is ItemStatus.RUNNING for item in todo):
                await self._clear_doubled_rows(backends)
        finally:
            # gather() returns at the first worker's error (or when cancelled); the others may still
            # be unwinding through the backends, which are closed only once every worker is done.
            try:
                if worker_tasks:
                    await asyncio.wait(worker_tasks)
            finally:
                try:
                    await writer.aclose()  # the writes already handed over, before the job goes on
                finally:
                    await backends.close()
        if self._should_pause() and (self._interrupted or not queue.empty()):
            return None
        return (JobStatus.CANCELLED if self._cancel.is_set() else JobStatus.COMPLETED), None

    def _committed(self, batch: Committed) -> None:
        if self._live is not None:
            self._live.committed(batch)

    async def _keep_lease(self) -> None:
        """Renew the lease every third of it, and early when a call waits for more certain
        validity; pick up a cancel request made through another instance."""
        interval = self._lease / 3
        wanted = self._guard.renewal_wanted
        while not self._stop_lease.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wanted.wait(), interval)
            if self._stop_lease.is_set():
                return
            wanted.clear()
            await self._renew()

    async def _renew(self) -> None:
        """One renewal; the lease guard learns until when the lease is now certainly valid."""
        try:
            state = await self._store.jobs.heartbeat(self._guard.lease)
        except LeaseLost as lost:
            self._guard.lose(lost)
            raise
        self._guard.renewed(state.lease)
        if state.cancel_requested:
            self.cancel()

    async def _clear_doubled_rows(self, backends: Backends) -> None:
        """This job was taken over with products in flight: the previous owner, if only paused,
        may still have sent an append after their rows were looked up. Look once more."""
        try:
            await backends.sheet.refresh()
        except LeaseLost:
            raise
        except Exception as error:  # the job's products are done; a failed look fails nothing
            log.warning("job %s: could not re-read the sheet for doubled rows: %s", self.job.job_id, error)

    async def _work(
        self,
        queue: asyncio.Queue[ItemRecord],
        backends: Backends,
        urls: dict[int, str],
        eta: EtaEstimator,
        products: ProductRun,
    ) -> None:
        delay = self._settings.product_delay_seconds
        first = True
        while not self._halt.is_set() and not queue.empty():
            if not first and delay > 0:
                # The original design's fixed pause between products, cut short by cancel or pause.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._halt.wait(), delay)
                if self._halt.is_set():
                    return
            first = False
            item = queue.get_nowait()
            if not await products.process(item, backends, urls[item.wip_id], eta):
                self._interrupted += 1
