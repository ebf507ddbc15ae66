"""Chooses each collection's adapters: real clients where configured, embedded defaults otherwise.

The one place that maps a collection's settings to its backends: the runner opens a job's
backends through :class:`BackendFactory`, and ``wipsvc check-config`` builds the ones it checks
with the same choices (:func:`cleaner_for`, ``GoogleSheetsBackend.from_settings``).

The factory also owns the quota buckets per account (:class:`~wipsvc.limits.accounts.QuotaAccounts`):
every real client it builds for a job takes its tokens from the buckets of the accounts that
job's collection calls — its Google service account (and project), its Apps Script user, the LLM
key — so the jobs calling one account share its quota and other accounts keep theirs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
from openai import AsyncOpenAI

from wipsvc.adapters.apps_script import DEFAULT_TIMEOUT_SECONDS as SCRIPT_TIMEOUT_SECONDS
from wipsvc.adapters.apps_script import AppsScriptApiCleaner, AppsScriptWebAppCleaner
from wipsvc.adapters.base import Backends, Cleaner, Describer, Extractor, PageFetcher, SheetSession
from wipsvc.adapters.builtin_cleaner import PythonCleaner
from wipsvc.adapters.builtin_describer import TemplateDescriber
from wipsvc.adapters.builtin_extractor import StructuredDataExtractor
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.adapters.llm import LLMDescriber, LLMExtractor
from wipsvc.adapters.llm_client import build_llm_client, llm_api_key, llm_model
from wipsvc.adapters.local_sheet import LocalSheetBackend
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.collection import CollectionConfig
from wipsvc.config import Settings
from wipsvc.credentials import CredentialError, with_resolved_credentials
from wipsvc.domain.errors import StepError
from wipsvc.limits import Limits, QuotaBucket
from wipsvc.limits.accounts import Account, QuotaAccounts, google_account, llm_account
from wipsvc.store import CollectionRecord, Store

ScriptCleaner = AppsScriptApiCleaner | AppsScriptWebAppCleaner


def cleaner_for(
    settings: Settings,
    config: CollectionConfig,
    *,
    client: httpx.AsyncClient | None = None,
    guard: SafeFetcher | None = None,
    bucket: QuotaBucket | None = None,
    timeout: float = SCRIPT_TIMEOUT_SECONDS,
) -> ScriptCleaner | PythonCleaner:
    """The collection's cleaner: its Apps Script (through the API or a web app), or the embedded
    Python rules.

    ``client`` (for the Apps Script API, whose URL is the operator's setting) and ``guard`` (for
    the web app, whose URL is the collection's) may be long-lived and shared by all jobs:
    timeouts and redirect handling are set per request, so their own defaults do not matter.
    An execution may take minutes; a check passes a short ``timeout``.
    """
    cleaning, worksheet = config.cleaning, config.sheet.worksheet
    if cleaning.backend == "apps_script_api":
        api_url = settings.apps_script_api_url
        return AppsScriptApiCleaner(
            cleaning, worksheet=worksheet, api_url=api_url, client=client, bucket=bucket, timeout=timeout
        )
    if cleaning.backend == "apps_script_webapp":
        return AppsScriptWebAppCleaner(
            cleaning,
            worksheet=worksheet,
            guard=guard,
            allowed_hosts=settings.scrape_allowed_hosts,
            bucket=bucket,
            timeout=timeout,
        )
    return PythonCleaner(cleaning.rules)


def _redis(settings: Settings) -> object | None:
    """A Redis client for the shared quota buckets when instances share accounts through Redis."""
    if settings.redis_url is None:
        return None
    from redis.asyncio import Redis  # the `redis` extra, needed only with WIPSVC_REDIS_URL

    return Redis.from_url(settings.redis_url)


class BackendFactory:
    """Opens one job's backends. Long-lived clients (HTTP pools, Google sessions) are shared
    by every job of the process and closed with the factory."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        fetcher: PageFetcher,
        *,
        google_sheets: GoogleSheetsBackend | None = None,
        llm_client: AsyncOpenAI | None = None,
        limits: Limits | None = None,
        guard: SafeFetcher | None = None,
    ) -> None:
        self._settings = settings
        self._fetcher = fetcher
        # URLs from a collection's settings (the Apps Script web app) pass the page fetcher's
        # address guard: the injected one, the fetcher itself, or one of our own.
        if guard is None and isinstance(fetcher, SafeFetcher):
            guard = fetcher
        self._owns_guard = guard is None
        self._guard = guard or SafeFetcher.from_settings(settings)
        # Injected limits (tests steer them) serve every job; otherwise each account has its own.
        self.accounts: QuotaAccounts | None = None
        if limits is None:
            self.accounts = QuotaAccounts(settings, _redis(settings))
            limits = self.accounts.fallback
        self.limits = limits
        self._local_sheets = LocalSheetBackend(store)
        # An injected Sheets backend keeps its own limits and coalescing (tests steer it so).
        self._google_sheets = google_sheets or GoogleSheetsBackend.from_settings(settings, self.limits)
        self._sheets_injected = google_sheets is not None
        self._llm = llm_client if llm_client is not None else build_llm_client(settings)
        self._http = httpx.AsyncClient(trust_env=False)  # Apps Script API calls; operator's URL

    @property
    def guard(self) -> SafeFetcher:
        """The address guard for URLs from collections' settings (the PUT route vets with it)."""
        return self._guard

    async def open(self, collection: CollectionRecord) -> Backends:
        try:
            config = with_resolved_credentials(collection.config, self._settings.credentials_dir)
        except CredentialError as error:
            raise StepError(str(error)) from None
        collection = replace(collection, config=config)
        limits = self.job_limits(collection)
        return Backends(
            sheet=await self._sheet(collection, limits),
            fetcher=self._fetcher,
            extractor=self._extractor(collection, limits),
            describer=self._describer(collection, limits),
            cleaner=self._cleaner(collection, limits),
            limits=limits,
        )

    def job_limits(self, collection: CollectionRecord) -> Limits:
        """The buckets of the accounts a job of ``collection`` calls (credentials resolved)."""
        if self.accounts is None:
            return self.limits
        config, sheets, script, llm = collection.config, None, None, None
        if config.sheet.backend == "google":
            path = config.sheet.credentials_file or self._settings.google_credentials_file
            sheets = google_account(path) if path else None
        if config.cleaning.backend == "apps_script_api" and config.cleaning.oauth_credentials_file:
            user = google_account(config.cleaning.oauth_credentials_file)
            script = Account("apps_script", user.identity, user.project)
        elif config.cleaning.backend == "apps_script_webapp" and config.cleaning.webapp_url:
            # A web app runs as the user who deployed it: one deployment, one account.
            script = Account("apps_script", config.cleaning.webapp_url.split("?")[0])
        key = llm_api_key(self._settings)
        if self._uses_llm(collection) is not None and key is not None:
            llm = llm_account(self._settings.llm_base_url, key)
        return self.accounts.for_job(collection.name, sheets=sheets, apps_script=script, llm=llm)

    async def _sheet(self, collection: CollectionRecord, limits: Limits) -> SheetSession:
        if collection.config.sheet.backend == "google":
            return await self._google_sheets.open(
                collection.config, None if self._sheets_injected else limits
            )
        return await self._local_sheets.open(collection.name, collection.config)

    def _uses_llm(self, collection: CollectionRecord) -> AsyncOpenAI | None:
        return self._llm if collection.config.llm.enabled else None

    def _extractor(self, collection: CollectionRecord, limits: Limits) -> Extractor:
        client = self._uses_llm(collection)
        if client is None:
            return StructuredDataExtractor()
        model = llm_model(self._settings, collection.config.llm)
        return LLMExtractor(client, model=model, limits=limits)

    def _describer(self, collection: CollectionRecord, limits: Limits) -> Describer:
        client = self._uses_llm(collection)
        if client is None:
            return TemplateDescriber()
        model = llm_model(self._settings, collection.config.llm)
        return LLMDescriber(client, model=model, limits=limits)

    def _cleaner(self, collection: CollectionRecord, limits: Limits) -> Cleaner:
        return cleaner_for(
            self._settings, collection.config, client=self._http, guard=self._guard, bucket=limits.apps_script
        )

    def share_quotas(self, instances: int) -> None:
        """Without Redis, split every account's quota between the busy instances."""
        if self.accounts is not None:
            self.accounts.share_among(instances)
        else:
            self.limits.share_among(instances)

    def quota_totals(self) -> dict[str, dict[str, Any]]:
        """Per resource, the calls of every account together."""
        return self.accounts.totals() if self.accounts is not None else self.limits.snapshot()

    def quota_usage(self, collections: frozenset[str] | None, *, reveal: bool) -> list[dict[str, Any]]:
        """Usage per account (see ``QuotaAccounts.usage``); none with injected limits."""
        return self.accounts.usage(collections, reveal=reveal) if self.accounts is not None else []

    async def aclose(self) -> None:
        if self.accounts is not None:
            await self.accounts.aclose()
        await self._google_sheets.aclose()
        await self._http.aclose()
        if self._owns_guard:
            await self._guard.aclose()
        if self._llm is not None:
            await self._llm.close()
