"""Chooses each collection's adapters: real clients where configured, embedded defaults otherwise.

The factory also owns the process's quota buckets (:class:`~wipsvc.limits.Limits`): every real
client it builds takes its tokens from them, so all jobs of the process share one quota.
"""

from __future__ import annotations

from dataclasses import replace

import httpx
from openai import AsyncOpenAI

from wipsvc.adapters.apps_script import build_apps_script_cleaner
from wipsvc.adapters.base import Backends, Cleaner, Describer, Extractor, PageFetcher, SheetSession
from wipsvc.adapters.builtin_cleaner import PythonCleaner
from wipsvc.adapters.builtin_describer import TemplateDescriber
from wipsvc.adapters.builtin_extractor import StructuredDataExtractor
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.adapters.llm import LLMDescriber, LLMExtractor, build_llm_client, llm_model
from wipsvc.adapters.local_sheet import LocalSheetBackend
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.config import Settings
from wipsvc.credentials import CredentialError, with_resolved_credentials
from wipsvc.domain.errors import StepError
from wipsvc.limits import Limits
from wipsvc.store import CollectionRecord, Store


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
        self.limits = limits or Limits.from_settings(settings)
        self._local_sheets = LocalSheetBackend(store)
        # An injected Sheets backend keeps its own limits and coalescing (tests steer it so).
        self._google_sheets = google_sheets or GoogleSheetsBackend.from_settings(settings, self.limits)
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
        return Backends(
            sheet=await self._sheet(collection),
            fetcher=self._fetcher,
            extractor=self._extractor(collection),
            describer=self._describer(collection),
            cleaner=self._cleaner(collection),
            limits=self.limits,
        )

    async def _sheet(self, collection: CollectionRecord) -> SheetSession:
        if collection.config.sheet.backend == "google":
            return await self._google_sheets.open(collection.config)
        return await self._local_sheets.open(collection.name, collection.config)

    def _uses_llm(self, collection: CollectionRecord) -> AsyncOpenAI | None:
        return self._llm if collection.config.llm.enabled else None

    def _extractor(self, collection: CollectionRecord) -> Extractor:
        client = self._uses_llm(collection)
        if client is None:
            return StructuredDataExtractor()
        model = llm_model(self._settings, collection.config.llm)
        return LLMExtractor(client, model=model, limits=self.limits)

    def _describer(self, collection: CollectionRecord) -> Describer:
        client = self._uses_llm(collection)
        if client is None:
            return TemplateDescriber()
        model = llm_model(self._settings, collection.config.llm)
        return LLMDescriber(client, model=model, limits=self.limits)

    def _cleaner(self, collection: CollectionRecord) -> Cleaner:
        script = build_apps_script_cleaner(
            self._settings,
            collection.config,
            client=self._http,
            guard=self._guard,
            bucket=self.limits.apps_script,
        )
        return script if script is not None else PythonCleaner(collection.config.cleaning.rules)

    async def aclose(self) -> None:
        await self._google_sheets.aclose()
        await self._http.aclose()
        if self._owns_guard:
            await self._guard.aclose()
        if self._llm is not None:
            await self._llm.close()
