"""Quota buckets, one per external resource of an account, shared by every job that calls it.

See :mod:`wipsvc.limits.bucket` for how a bucket admits calls and reacts to 429s,
:mod:`wipsvc.limits.accounts` for the buckets per account, and :mod:`wipsvc.limits.shared` for
the buckets kept in Redis for several instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wipsvc.config import Settings
from wipsvc.limits.bucket import Anchor, Permit, QuotaBucket

__all__ = ["Limits", "Permit", "QuotaBucket", "llm_burst", "sheets_burst"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The process's buckets, one per external resource."""

    sheets_write: QuotaBucket
    sheets_read: QuotaBucket
    apps_script: QuotaBucket
    llm_requests: QuotaBucket
    llm_tokens: QuotaBucket

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        writes, reads = settings.sheets_write_per_minute, settings.sheets_read_per_minute

        def bucket(
            name: str,
            limit: int | None,
            *,
            anchor: Anchor = "start",
            max_concurrent: int | None = None,
            burst: int | None = None,
        ) -> QuotaBucket:
            return QuotaBucket(
                name,
                limit,
                settings.quota_period_seconds,
                anchor=anchor,
                max_concurrent=max_concurrent,
                burst=burst,
                backoff=settings.rate_limit_backoff_seconds,
                max_backoff=settings.rate_limit_max_backoff_seconds,
                ageing=settings.priority_ageing_seconds,
            )

        return cls(
            # Sheets calls take well under a second: anchoring at their end costs little and
            # keeps us inside Google's window wherever it counts them. Paced after a burst of half
            # the minute's quota, so that a short job is not held back while a long one's waiting
            # writes coalesce instead of the whole minute's quota going in the first seconds.
            sheets_write=bucket("sheets_write", writes, anchor="finish", burst=sheets_burst(writes)),
            sheets_read=bucket("sheets_read", reads, anchor="finish", burst=sheets_burst(reads)),
            apps_script=bucket(
                "apps_script",
                settings.apps_script_per_minute,
                max_concurrent=settings.apps_script_max_concurrent,
            ),
            llm_requests=bucket(
                "llm_requests",
                settings.llm_requests_per_minute,
                burst=llm_burst(settings.llm_requests_per_minute),
            ),
            llm_tokens=bucket("llm_tokens", settings.llm_tokens_per_minute),
        )

    @classmethod
    def unlimited(cls) -> Limits:
        """No limits of ours; 429s still pause (used where nothing was configured, e.g. tests)."""
        return cls(*(QuotaBucket(name, None) for name in _NAMES))

    def buckets(self) -> dict[str, QuotaBucket]:
        return {name: getattr(self, name) for name in _NAMES}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: bucket.snapshot() for name, bucket in self.buckets().items()}

    def share_among(self, instances: int) -> None:
        """Give this process one ``instances``-th of every quota (see ``QuotaBucket.share``)."""
        for bucket in self.buckets().values():
            bucket.share(instances)

    def paused_for(self) -> float:
        """The longest pause any resource is in (every call to it waits at least that long)."""
        return max(bucket.paused_for() for bucket in self.buckets().values())


_NAMES = ("sheets_write", "sheets_read", "apps_script", "llm_requests", "llm_tokens")


def sheets_burst(limit: int | None) -> int | None:
    # Half a minute's quota at once: a short job's writes go without waiting (a 100-product job
    # sends about 25 requests), a longer job's are then paced one every period/limit, gathering
    # into coalesced requests. The window guard still holds any minute to `limit`.
    return None if limit is None else max(1, limit // 2)


def llm_burst(limit: int | None) -> int | None:
    # Half a minute's requests at once, then paced. Providers count a per-minute limit over shorter
    # spans too (OpenAI: 60 a minute may be enforced as one a second); and a paced bucket hands out
    # tokens as they come, so that an urgent job's later calls (descriptions after extraction) take
    # the next ones instead of waiting for the next minute behind calls that were there first.
    return sheets_burst(limit)
