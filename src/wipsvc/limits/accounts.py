"""Quota buckets per (service, account): Google's quotas are per user (a service account is one)
and per project, the LLM's per API key. Ten collections on ten service accounts get ten quotas.

An :class:`Account` names what a quota is counted against; :class:`QuotaAccounts` keeps one set
of buckets per account — in this process, or in Redis when several instances share the accounts
(``WIPSVC_REDIS_URL``) — and hands each job a :class:`~wipsvc.limits.Limits` of its accounts'
buckets. Usage is shown to admins by account and to a collection's key under an alias only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wipsvc.config import Settings
from wipsvc.limits import Limits, QuotaBucket, llm_burst, sheets_burst
from wipsvc.limits.bucket import Anchor
from wipsvc.limits.shared import SharedQuotaBucket

Service = Literal["google", "apps_script", "llm"]

_KEY_PREFIX = "wipsvc:quota"


@dataclass(frozen=True, slots=True)
class Account:
    """What one quota is counted against. ``identity`` may be an e-mail or hold a key's digest:
    it is shown to admins only, never to a collection's key (see ``alias``)."""

    service: Service
    identity: str
    project: str | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.service}\0{self.identity}".encode()).hexdigest()[:16]

    @property
    def alias(self) -> str:
        """A stable name that reveals neither the account nor a key."""
        return f"{self.service}-{self.digest[:8]}"


def google_account(credentials_file: str) -> Account:
    """The user a Google credential file acts as, and its project when the file names one: a
    service account's ``client_email`` and ``project_id``; an OAuth user's ``account`` (gcloud
    writes it) or client and file, and its ``quota_project_id``."""
    try:
        data = json.loads(Path(credentials_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    identity = data.get("client_email") or data.get("account")
    if not identity:
        identity = f"{data.get('client_id', 'oauth-user')}@{Path(credentials_file).name}"
    project = data.get("project_id") or data.get("quota_project_id")
    return Account("google", str(identity), str(project) if project else None)


def llm_account(base_url: str, api_key: str) -> Account:
    """An LLM key at its endpoint; the key itself is kept only as a digest."""
    key_digest = hashlib.sha256(api_key.encode()).hexdigest()[:12]
    return Account("llm", f"{base_url.rstrip('/')} key:{key_digest}")


@dataclass(slots=True)
class _Entry:
    account: Account
    buckets: dict[str, QuotaBucket]
    collections: set[str]


class QuotaAccounts:
    """One set of buckets per account, made on first use and kept for the process's life."""

    def __init__(self, settings: Settings, redis: Any = None) -> None:
        self._settings = settings
        self._redis = redis  # redis.asyncio.Redis: buckets shared by every instance
        self._entries: dict[tuple[Service, str], _Entry] = {}
        self._projects: dict[tuple[str, str], QuotaBucket] = {}
        self._parts = 1
        self.fallback = Limits.from_settings(settings)  # for the services a job does not call

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def _bucket(
        self,
        key: str,
        name: str,
        limit: int | None,
        *,
        anchor: Anchor = "start",
        max_concurrent: int | None = None,
        burst: int | None = None,
        enclosing: QuotaBucket | None = None,
    ) -> QuotaBucket:
        s = self._settings
        common: dict[str, Any] = {
            "anchor": anchor,
            "max_concurrent": max_concurrent,
            "burst": burst,
            "backoff": s.rate_limit_backoff_seconds,
            "max_backoff": s.rate_limit_max_backoff_seconds,
            "ageing": s.priority_ageing_seconds,
        }
        if self._redis is not None:
            assert enclosing is None or isinstance(enclosing, SharedQuotaBucket)
            return SharedQuotaBucket(
                self._redis,
                f"{_KEY_PREFIX}:{key}",
                name,
                limit,
                s.quota_period_seconds,
                enclosing=enclosing,
                **common,
            )
        bucket = QuotaBucket(name, limit, s.quota_period_seconds, enclosing=enclosing, **common)
        bucket.share(self._parts)
        return bucket

    def _project(self, kind: str, project: str | None, limit: int | None) -> QuotaBucket | None:
        if project is None or limit is None:
            return None
        bucket = self._projects.get((kind, project))
        if bucket is None:
            digest = hashlib.sha256(project.encode()).hexdigest()[:16]
            bucket = self._bucket(f"project:{digest}:{kind}", f"project_{kind}", limit, anchor="finish")
            self._projects[(kind, project)] = bucket
        return bucket

    def _entry(self, account: Account, collection: str) -> _Entry:
        entry = self._entries.get((account.service, account.identity))
        if entry is None:
            entry = _Entry(account, self._make(account), set())
            self._entries[(account.service, account.identity)] = entry
        entry.collections.add(collection)
        return entry

    def _make(self, account: Account) -> dict[str, QuotaBucket]:
        s, key = self._settings, f"{account.service}:{account.digest}"
        if account.service == "google":
            writes, reads = s.sheets_write_per_minute, s.sheets_read_per_minute
            return {
                # As in Limits.from_settings: anchored at the end, paced with a burst.
                "sheets_write": self._bucket(
                    f"{key}:sheets_write",
                    "sheets_write",
                    writes,
                    anchor="finish",
                    burst=sheets_burst(writes),
                    enclosing=self._project("write", account.project, s.sheets_write_per_minute_per_project),
                ),
                "sheets_read": self._bucket(
                    f"{key}:sheets_read",
                    "sheets_read",
                    reads,
                    anchor="finish",
                    burst=sheets_burst(reads),
                    enclosing=self._project("read", account.project, s.sheets_read_per_minute_per_project),
                ),
            }
        if account.service == "apps_script":
            return {
                "apps_script": self._bucket(
                    f"{key}:apps_script",
                    "apps_script",
                    s.apps_script_per_minute,
                    max_concurrent=s.apps_script_max_concurrent,
                )
            }
        return {
            "llm_requests": self._bucket(
                f"{key}:llm_requests",
                "llm_requests",
                s.llm_requests_per_minute,
                burst=llm_burst(s.llm_requests_per_minute),
            ),
            "llm_tokens": self._bucket(f"{key}:llm_tokens", "llm_tokens", s.llm_tokens_per_minute),
        }

    def for_job(
        self,
        collection: str,
        *,
        sheets: Account | None = None,
        apps_script: Account | None = None,
        llm: Account | None = None,
    ) -> Limits:
        """The buckets of the accounts a collection's job calls (the fallback's for the others)."""
        buckets = dict(self.fallback.buckets())
        for account in (sheets, apps_script, llm):
            if account is not None:
                buckets.update(self._entry(account, collection).buckets)
        return Limits(**buckets)

    def share_among(self, instances: int) -> None:
        """Without Redis, every account's quota is split between the busy instances (as before)."""
        self._parts = max(1, instances)
        self.fallback.share_among(instances)
        for entry in self._entries.values():
            for bucket in entry.buckets.values():
                bucket.share(instances)
        for bucket in self._projects.values():
            bucket.share(instances)

    def paused_for(self) -> float:
        return max(
            [self.fallback.paused_for()]
            + [b.paused_for() for e in self._entries.values() for b in e.buckets.values()]
        )

    def totals(self) -> dict[str, dict[str, Any]]:
        """Per resource, every account's calls together (limits as configured per account)."""
        totals = self.fallback.snapshot()
        for entry in self._entries.values():
            for name, bucket in entry.buckets.items():
                snapshot, row = bucket.snapshot(), totals[name]
                for field in ("in_flight", "waiting", "admitted", "throttled"):
                    row[field] += snapshot[field]
                row["paused_for"] = max(row["paused_for"], snapshot["paused_for"])
        return totals

    def usage(self, collections: frozenset[str] | None, *, reveal: bool) -> list[dict[str, Any]]:
        """Per account its buckets' state: the accounts ``collections`` used (None: every one),
        each under its alias; with ``reveal`` (an admin) also by name and project."""
        shown = []
        for entry in self._entries.values():
            used_by = entry.collections if collections is None else entry.collections & collections
            if not used_by:
                continue
            account = entry.account
            row: dict[str, Any] = {"service": account.service, "alias": account.alias}
            if reveal:
                row["account"] = account.identity
                row["project"] = account.project
            row["collections"] = sorted(used_by)
            row["buckets"] = {name: bucket.snapshot() for name, bucket in entry.buckets.items()}
            shown.append(row)
        return sorted(shown, key=lambda row: (row["service"], row["alias"]))

    async def aclose(self) -> None:
        buckets = [b for e in self._entries.values() for b in e.buckets.values()]
        for bucket in [*buckets, *self._projects.values()]:
            if isinstance(bucket, SharedQuotaBucket):
                await bucket.flush()
        if self._redis is not None:
            await self._redis.aclose()
