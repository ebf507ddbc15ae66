"""Prometheus metrics of one running service, in a registry of its own.

Each app has its own `CollectorRegistry` (several apps may live in one process, as in the
tests), exposed at `/metrics`. Counters count what this instance did since it started;
`wipsvc_jobs` counts the database's jobs (every instance's). Labels name statuses, steps and
external resources only: never an account, a key or a collection's data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wipsvc.jobs.models import EVENT_STATUS_FOR_TERMINAL
from wipsvc.limits import Limits
from wipsvc.store import ProgressEvent, Store
from wipsvc.store.stats_repo import StatsRepository

# The `*_created` series (a timestamp per counter) only double what scrapers already know.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Steps take from milliseconds (the built-in backends) to minutes (an LLM or Apps Script
# waiting for its quota).
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Which external service each quota bucket belongs to.
SERVICE_OF_RESOURCE = {
    "sheets_write": "sheets",
    "sheets_read": "sheets",
    "apps_script": "apps_script",
    "llm_requests": "llm",
    "llm_tokens": "llm",
}
_TERMINAL_EVENTS = {event.value: status.value for status, event in EVENT_STATUS_FOR_TERMINAL.items()}


class ServiceMetrics:
    """The service's instruments; also the job runners' observer and an event-bus subscriber."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        accounts: AccountUsage | None = None,
        totals: QuotaTotals | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self._stats = StatsRepository(store.db)
        self._jobs = Gauge(
            "wipsvc_jobs", "Jobs in the database by status.", ["status"], registry=self.registry
        )
        self._jobs_finished = Counter(
            "wipsvc_jobs_finished",
            "Jobs this instance ended, by final status.",
            ["status"],
            registry=self.registry,
        )
        self._products = Counter(
            "wipsvc_products",
            "Products this instance finished, by outcome (succeeded, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self._steps = Histogram(
            "wipsvc_step_duration_seconds",
            "Time a product's step took to succeed, retries and quota waits included.",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self._tokens = Counter(
            "wipsvc_llm_tokens",
            "LLM tokens spent, by kind (prompt, completion).",
            ["kind"],
            registry=self.registry,
        )
        self._llm_calls = Counter(
            "wipsvc_llm_calls", "LLM requests answered (each one billed).", registry=self.registry
        )
        self._running_here = Gauge(
            "wipsvc_jobs_running_here", "Jobs this instance is running now.", registry=self.registry
        )
        self._socket_clients = Gauge(
            "wipsvc_socketio_clients", "Socket.IO clients connected to this instance.", registry=self.registry
        )
        self.registry.register(QuotaCollector(limits, accounts, totals))

    def count_running_jobs(self, count: Callable[[], int]) -> None:
        self._running_here.set_function(lambda: float(count()))

    def count_socket_clients(self, count: Callable[[], int]) -> None:
        self._socket_clients.set_function(lambda: float(count()))

    # -- RunnerObserver ------------------------------------------------------------------------
    def step_finished(self, step: str, seconds: float) -> None:
        self._steps.labels(step=step).observe(seconds)

    def tokens_spent(self, usage: Mapping[str, int]) -> None:
        for kind in ("prompt", "completion"):
            amount = usage.get(f"{kind}_tokens", 0)
            if amount > 0:
                self._tokens.labels(kind=kind).inc(amount)
        if usage.get("calls", 0) > 0:
            self._llm_calls.inc(usage["calls"])

    # -- event-bus handler ---------------------------------------------------------------------
    async def on_event(self, event: ProgressEvent) -> None:
        payload = event.payload
        product = payload.get("current_product")
        if isinstance(product, dict):
            self._products.labels(outcome="succeeded" if product.get("success") else "failed").inc()
        final = _TERMINAL_EVENTS.get(str(payload.get("status")))
        if final is not None:
            self._jobs_finished.labels(status=final).inc()

    # -- exposition ----------------------------------------------------------------------------
    async def render(self) -> bytes:
        """The text exposition, with the database's job counts read now."""
        for status, count in (await self._stats.jobs_by_status()).items():
            self._jobs.labels(status=status.value).set(count)
        return generate_latest(self.registry)


AccountUsage = Callable[[], list[dict[str, Any]]]  # see QuotaAccounts.usage
QuotaTotals = Callable[[], dict[str, dict[str, Any]]]  # see QuotaAccounts.totals


class QuotaCollector(Collector):
    """The quota buckets' state, read when scraped."""

    def __init__(
        self, limits: Limits, accounts: AccountUsage | None = None, totals: QuotaTotals | None = None
    ) -> None:
        self._limits = limits
        self._accounts = accounts
        self._totals = totals  # every account's buckets together, per resource

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        labels = ["resource", "service"]
        limit = GaugeMetricFamily(
            "wipsvc_quota_limit",
            "Calls (or tokens) a resource allows this instance per period.",
            labels=labels,
        )
        available = GaugeMetricFamily(
            "wipsvc_quota_available", "Tokens of a resource's bucket free now.", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "wipsvc_quota_in_flight", "Calls to a resource running now.", labels=labels
        )
        waiting = GaugeMetricFamily(
            "wipsvc_quota_waiting", "Calls waiting for a resource's token.", labels=labels
        )
        paused = GaugeMetricFamily(
            "wipsvc_quota_paused_seconds", "Pause left after a 429 (0 when not paused).", labels=labels
        )
        admitted = CounterMetricFamily(
            "wipsvc_quota_admitted", "Calls admitted by a resource's bucket.", labels=labels
        )
        throttled = CounterMetricFamily(
            "wipsvc_rate_limited", "429 answers from an external service, by resource.", labels=labels
        )
        snapshots = (
            self._totals()
            if self._totals is not None
            else {n: b.snapshot() for n, b in self._limits.buckets().items()}
        )
        for name, snapshot in snapshots.items():
            values = [name, SERVICE_OF_RESOURCE.get(name, name)]
            if snapshot["limit"] is not None:
                limit.add_metric(values, snapshot["limit"])
            if snapshot["available"] is not None:
                available.add_metric(values, snapshot["available"])
            in_flight.add_metric(values, snapshot["in_flight"])
            waiting.add_metric(values, snapshot["waiting"])
            paused.add_metric(values, snapshot["paused_for"])
            admitted.add_metric(values, snapshot["admitted"])
            throttled.add_metric(values, snapshot["throttled"])
        return [limit, available, in_flight, waiting, paused, admitted, throttled, *self._per_account()]

    def _per_account(self) -> list[Metric]:
        """The same figures per account's bucket, labelled with the account's alias (never its
        e-mail or key: metrics end up in other systems' storage)."""
        labels = ["resource", "service", "account"]
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "limit": GaugeMetricFamily(
                "wipsvc_account_quota_limit", "Calls (or tokens) an account allows per period.", labels=labels
            ),
            "available": GaugeMetricFamily(
                "wipsvc_account_quota_available", "Tokens of an account's bucket free now.", labels=labels
            ),
            "in_flight": GaugeMetricFamily(
                "wipsvc_account_quota_in_flight", "Calls on an account's bucket running now.", labels=labels
            ),
            "waiting": GaugeMetricFamily(
                "wipsvc_account_quota_waiting", "Calls waiting for an account's token.", labels=labels
            ),
            "admitted": CounterMetricFamily(
                "wipsvc_account_quota_admitted", "Calls admitted by an account's bucket.", labels=labels
            ),
            "throttled": CounterMetricFamily(
                "wipsvc_account_rate_limited", "429 answers on an account, by resource.", labels=labels
            ),
        }
        for account in self._accounts() if self._accounts is not None else []:
            for name, snapshot in account["buckets"].items():
                values = [name, SERVICE_OF_RESOURCE.get(name, name), account["alias"]]
                for field, family in families.items():
                    if snapshot.get(field) is not None:
                        family.add_metric(values, snapshot[field])
        return list(families.values())
