"""Everything a running service holds, built and torn down in one place."""

from __future__ import annotations

import time
from dataclasses import dataclass

from wipsvc.adapters.base import Backends, PageFetcher
from wipsvc.adapters.factory import BackendFactory
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.config import Settings
from wipsvc.jobs.events import EventBus
from wipsvc.jobs.registry import JobRegistry, default_owner
from wipsvc.jobs.reruns import RerunScheduler
from wipsvc.jobs.retention import HistoryPruner
from wipsvc.jobs.runner import JobRunner
from wipsvc.jobs.scheduler import Clock, Scheduler
from wipsvc.jobs.schedules import ScheduleService
from wipsvc.jobs.service import JobService
from wipsvc.jobs.signals import job_signals
from wipsvc.metrics import ServiceMetrics
from wipsvc.notify.sender import NotificationSender
from wipsvc.pipeline.retry import RetryPolicy
from wipsvc.store import JobRecord, Store
from wipsvc.store.tables import utcnow


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: EventBus
    registry: JobRegistry
    backends: BackendFactory
    fetcher: PageFetcher
    owns_fetcher: bool
    started_at: float
    metrics: ServiceMetrics
    pruner: HistoryPruner | None = None
    reruns: RerunScheduler | None = None
    notifications: NotificationSender | None = None
    scheduler: Scheduler | None = None

    @property
    def job_service(self) -> JobService:
        """Start, retry, cancel and view jobs: what the routes and the dashboard call."""
        return JobService(self.store, self.registry, self.settings)

    @property
    def schedule_service(self) -> ScheduleService:
        """Recurring schedules: what the routes call."""
        assert self.scheduler is not None
        return ScheduleService(self.store, self.settings, self.scheduler)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        fetcher: PageFetcher | None = None,
        retry: RetryPolicy | None = None,
        google_sheets: GoogleSheetsBackend | None = None,
        clock: Clock = utcnow,
    ) -> Services:
        """``clock`` is what the recurring schedules go by (tests move it instead of waiting)."""
        store = await Store.open(
            settings.database_url,
            statement_timeout=settings.db_statement_timeout_seconds,
            idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout_seconds,
        )
        bus = EventBus()
        owns_fetcher = fetcher is None
        fetcher = fetcher or SafeFetcher.from_settings(settings)
        backends = BackendFactory(settings, store, fetcher, google_sheets=google_sheets)
        retry_policy = retry or RetryPolicy(
            max_attempts=settings.step_max_attempts,
            base_delay=settings.retry_base_delay_seconds,
            max_delay=settings.retry_max_delay_seconds,
            quota_wait=settings.quota_wait_seconds,
        )

        metrics = ServiceMetrics(
            store,
            backends.limits,
            accounts=lambda: backends.quota_usage(None, reveal=False),
            totals=backends.quota_totals,
        )
        bus.subscribe(metrics.on_event)

        async def open_backends(job: JobRecord) -> Backends:
            collection = await store.collections.get(job.collection_name)
            if collection is None:
                raise RuntimeError(f"collection {job.collection_name} no longer exists")
            return await backends.open(collection)

        def make_runner(job: JobRecord, owner: str) -> JobRunner:
            return JobRunner(
                job,
                store=store,
                bus=bus,
                settings=settings,
                owner=owner,
                open_backends=open_backends,
                retry=retry_policy,
                observer=metrics,
                fetcher=fetcher,
            )

        # Several instances on one PostgreSQL call the same Google and LLM accounts: the
        # quotas are theirs to share. SQLite serves one instance, which keeps them whole. With
        # Redis the buckets themselves are shared, exactly: no instance needs a part of its own.
        sharing = (
            settings.share_quotas_between_instances and not store.is_sqlite and settings.redis_url is None
        )
        registry = JobRegistry(
            store,
            bus,
            settings,
            make_runner,
            default_owner(settings),
            share_quotas=backends.share_quotas if sharing else None,
            signals=job_signals(settings, store),
        )
        metrics.count_running_jobs(lambda: len(registry.running_job_ids))
        await registry.start()
        pruner = None
        if settings.job_history_retention_days > 0:
            pruner = HistoryPruner(store, settings.job_history_retention_days)
            pruner.start()
        reruns = RerunScheduler(store, settings.auto_rerun_delay_seconds)
        reruns.start()
        notifications = NotificationSender(store, settings, backends.guard)
        bus.subscribe(notifications.on_event)
        notifications.start()
        scheduler = Scheduler(store, settings, clock=clock, on_created=registry.wake)
        scheduler.start()
        return cls(
            settings,
            store,
            bus,
            registry,
            backends,
            fetcher,
            owns_fetcher,
            time.time(),
            metrics,
            pruner,
            reruns,
            notifications,
            scheduler,
        )

    async def drain(self) -> None:
        """Shutting down: hand the running jobs back once their steps in flight are done."""
        await self.registry.drain(self.settings.shutdown_grace_seconds)

    async def stop(self) -> None:
        if self.pruner is not None:
            await self.pruner.stop()
        for background in (self.scheduler, self.reruns, self.notifications):
            if background is not None:
                await background.stop()
        await self.registry.stop()
        await self.backends.aclose()
        if self.owns_fetcher:  # an injected fetcher belongs to whoever made it
            await self.fetcher.aclose()
        await self.store.close()
