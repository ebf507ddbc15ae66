"""The job registry: accepts jobs, claims runnable ones, and owns their asyncio tasks.

Restart recovery and several instances sharing one database are the same mechanism:
every instance periodically claims queued jobs and running jobs whose lease expired
(on SQLite, the only instance also takes every running job left by its predecessor).
At the same pace it counts the instances running jobs, so that they share the quotas.

On shutdown it drains: it stops claiming, lets each running job's steps in flight finish and
be checkpointed (within a grace period), then hands every job back with a `paused` event, so
that the next instance to claim it resumes it at once (and says `resumed`).

Between instances (PostgreSQL), signals (`signals.py`) carry a cancel to the instance running
the job, and wake the other instances' claim loops when a job is queued or handed back; the
lease renewal and the claim interval remain the fallback when a signal is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from wipsvc.config import Settings
from wipsvc.domain.priority import Priority
from wipsvc.jobs.events import EventBus, scheduled_notice
from wipsvc.jobs.runner import JobRunner
from wipsvc.jobs.signals import JobSignals
from wipsvc.store import JobRecord, LeaseLost, Store, describe_error
from wipsvc.store.lease import Lease

log = logging.getLogger(__name__)

RunnerFactory = Callable[[JobRecord, str], JobRunner]
ShareQuotas = Callable[[int], None]  # told how many instances are running jobs now


def default_owner(settings: Settings) -> str:
    return settings.instance_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class JobRegistry:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: Settings,
        make_runner: RunnerFactory,
        owner: str,
        *,
        share_quotas: ShareQuotas | None = None,
        signals: JobSignals | None = None,
    ) -> None:
        self._store = store
        self._signals = signals
        self._share_quotas = share_quotas
        self._bus = bus
        self._settings = settings
        self._make_runner = make_runner
        self.owner = owner
        self._runners: dict[str, tuple[JobRunner, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        # On SQLite this is the only instance: what its predecessor left running is orphaned.
        self._take_orphans_now = store.is_sqlite
        self._background: set[asyncio.Task[None]] = set()
        self._busy_others: set[str] = set()  # other instances running jobs, as last counted

    @property
    def running_job_ids(self) -> list[str]:
        return list(self._runners)

    def live_status(self, job_id: str) -> tuple[JobRecord, str] | None:
        """A job this instance runs, with its results JSON, as its runner last committed them;
        None when only the database knows (see `LiveStatus`)."""
        entry = self._runners.get(job_id)
        return entry[0].status() if entry is not None else None

    @property
    def draining(self) -> bool:
        return self._stopping

    async def start(self) -> None:
        if self._signals is not None:
            await self._signals.start(
                on_cancel=self._cancel_signalled, on_queued=self._wake.set, on_reconnect=self._signals_lost
            )
        self._loop_task = asyncio.create_task(self._claim_loop(), name="wipsvc-claim-loop")

    async def drain(self, grace: float) -> None:
        """Stop claiming; pause every running job, giving the steps in flight up to ``grace``
        seconds to finish (then cancelling them: their last checkpoint stands); hand the jobs
        back, each with a `paused` event."""
        self._stopping = True
        runners = dict(self._runners)  # taken now: each task's done-callback removes its entry
        if not runners:
            return
        log.info("pausing %d running job(s); steps in flight have %g s to finish", len(runners), grace)
        for runner, _ in runners.values():
            runner.pause()
        tasks = [task for _, task in runners.values()]
        _, late = await asyncio.wait(tasks, timeout=grace) if grace > 0 else (set(), set(tasks))
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if late:
            log.warning("%d job(s) stopped mid-step after the grace period; their steps rerun", len(late))
        for runner, _ in runners.values():
            await self._hand_back(runner.lease)
        if self._signals is not None:  # the other instances take them over now, not at their next claim
            await self._signals.send_queued()

    async def _hand_back(self, lease: Lease) -> None:
        job_id = lease.job_id
        try:
            event = await self._store.jobs.pause(lease)
        except LeaseLost:
            return  # it ended meanwhile, or another instance holds it
        except Exception:
            log.exception("could not hand job %s back; it resumes when its lease expires", job_id)
            return
        log.info("job %s paused: handed back for the next instance to resume", job_id)
        await self._bus.publish([event])

    async def stop(self) -> None:
        """Hand the running jobs back at once (see `drain`) and end every task this registry owns."""
        await self.drain(grace=0)
        if self._signals is not None:  # no wake-up may arrive while the loop is being cancelled
            await self._signals.stop()
        tasks = list(self._background)
        if self._loop_task is not None:
            tasks.append(self._loop_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runners.clear()

    async def submit(
        self,
        collection: str,
        wip_ids: Sequence[int],
        *,
        retry_of: str | None = None,
        priority: Priority = Priority.NORMAL,
        run_at: datetime | None = None,
    ) -> JobRecord:
        """Queue a job, or with ``run_at`` schedule it (announced by `wip_job_scheduled`)."""
        job = await self._store.jobs.create(
            str(uuid.uuid4()), collection, wip_ids, retry_of=retry_of, priority=priority, run_at=run_at
        )
        if job.run_at is not None:
            await self._bus.announce(scheduled_notice(job))
        self._wake.set()
        if self._signals is not None:  # this instance may be at its cap: another starts it now
            await self._signals.send_queued()
        return job

    async def change_priority(self, job_id: str, priority: Priority) -> JobRecord:
        job = await self._store.priority.change(job_id, priority)
        self._wake.set()  # an urgent job may now run beyond its collection's cap
        return job

    def wake(self) -> None:
        """Claim now (jobs were queued by another part of this instance)."""
        self._wake.set()

    async def cancel(self, job_id: str) -> JobRecord:
        job, event = await self._store.jobs.request_cancel(job_id)
        await self._bus.publish([event])
        if job_id in self._runners:
            self._runners[job_id][0].cancel()
        elif event is not None:
            self._wake.set()  # a queued job ended: the next one may start
        elif self._signals is not None:
            # Another instance runs it: tell it now rather than at its next lease renewal.
            await self._signals.send_cancel(job_id)
        return job

    def _cancel_signalled(self, job_id: str) -> None:
        """Another instance was asked to cancel a job: stop its runner if it runs here."""
        entry = self._runners.get(job_id)
        if entry is not None:
            log.info("job %s: cancel requested through another instance; stopping", job_id)
            entry[0].cancel()

    def _signals_lost(self) -> None:
        """The signals' connection was lost a while: renew every lease now (a cancel sent
        meanwhile is found there) and claim at once (a job queued meanwhile)."""
        for runner, _ in self._runners.values():
            runner.renew_soon()
        self._wake.set()

    async def _claim_loop(self) -> None:
        interval = self._settings.claim_interval_seconds
        while True:
            try:
                await self._claim_once()
                await self._count_busy_instances()
            except Exception:
                log.exception("claiming jobs failed; trying again in %.1f s", interval)
            # Not wait_for: on Python 3.11 it swallows a cancel that comes as the event is set,
            # and the loop would outlive `stop()`.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()

    async def _claim_once(self) -> None:
        if self._stopping:
            return
        await self._end_stalled_sessions()
        # Jobs that must not run again (cancelled, or stuck dying before any progress) end here.
        ended = await self._store.jobs.end_abandoned(self._settings.job_max_claims)
        if ended:
            await self._bus.publish(ended)
        capacity = self._settings.max_running_jobs - len(self._runners)
        if capacity <= 0:
            return
        jobs = await self._store.jobs.claim(
            self.owner,
            lease_seconds=self._settings.lease_seconds,
            per_collection=self._settings.jobs_per_collection,
            limit=capacity,
            take_running=self._take_orphans_now,
            ageing_seconds=self._settings.priority_ageing_seconds,
        )
        # Only at start-up: later, a second process sharing the file by mistake must not
        # take jobs from a live owner; their leases expire if it dies.
        self._take_orphans_now = False
        if self._stopping:  # the drain began while claiming: these are for another instance
            for job in jobs:
                with contextlib.suppress(Exception):
                    await self._store.jobs.release(job.job_id, self.owner)
            return
        if jobs and not self._runners and self._share_quotas is not None:
            # Busy from now on: take this instance's part of the quotas before its new jobs call
            # out (from the last count of the others; the next round counts again).
            self._share_quotas(len(self._busy_others) + 1)
        for job in jobs:
            runner = self._make_runner(job, self.owner)
            task = asyncio.create_task(runner.run(), name=f"wipsvc-job-{job.job_id}")
            self._runners[job.job_id] = (runner, task)
            task.add_done_callback(functools.partial(self._on_done, job.job_id))
            # A job that ran before (on an instance that stopped or died) goes on from its checkpoints.
            verb = "resumed" if job.started_at is not None else "started"
            log.info("job %s (%s) %s on %s", job.job_id, job.collection_name, verb, self.owner)

    async def _end_stalled_sessions(self) -> None:
        """A frozen instance's session stalled mid-statement holds its locks (a job row, a claim's
        rows) past every PostgreSQL timeout: ending it lets this round or the next take the job."""
        try:
            stalled = await self._store.stalled_sessions.end()
        except Exception as error:  # e.g. a session of a role this one may not end: claim anyway
            log.warning("could not end stalled database sessions: %s", describe_error(error, with_type=True))
            return
        if stalled:
            log.warning("ended %d database session(s) stalled mid-statement: pids %s", len(stalled), stalled)

    async def _count_busy_instances(self) -> None:
        """Instances that run jobs at once share the external quotas evenly (they call the same
        accounts); an idle instance uses none, so its part goes to the busy ones."""
        if self._share_quotas is None:
            return
        busy = await self._store.jobs.busy_owners()
        self._busy_others = busy - {self.owner}
        if self._runners:
            busy.add(self.owner)
        self._share_quotas(max(1, len(busy)))

    def _on_done(self, job_id: str, task: asyncio.Task[None]) -> None:
        self._runners.pop(job_id, None)
        if self._stopping or task.cancelled():
            return
        error = task.exception()
        if error is not None and not isinstance(error, LeaseLost):
            # E.g. the database went away mid-job: give the job back so a claim resumes it.
            log.error("job %s stopped on an error; it will be resumed", job_id, exc_info=error)
            release = asyncio.get_running_loop().create_task(
                self._release_later(job_id, describe_error(error, with_type=True))
            )
            self._background.add(release)
            release.add_done_callback(self._background.discard)
        self._wake.set()

    async def _release_later(self, job_id: str, error: str) -> None:
        await asyncio.sleep(self._settings.claim_interval_seconds)
        with contextlib.suppress(Exception):
            await self._store.jobs.release(job_id, self.owner, error=error)
        self._wake.set()
