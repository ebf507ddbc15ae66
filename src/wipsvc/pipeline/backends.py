"""Chooses each collection's adapters: real clients where configured, embedded defaults otherwise."""

from __future__ import annotations

import httpx
from openai import AsyncOpenAI

from wipsvc.adapters.apps_script import build_apps_script_cleaner
from wipsvc.adapters.base import Cleaner, Describer, Extractor, PageFetcher, SheetSession
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.adapters.llm import LLMDescriber, LLMExtractor, build_llm_client, llm_model
from wipsvc.adapters.local_sheet import LocalSheetBackend
from wipsvc.config import Settings
from wipsvc.pipeline.clean import PythonCleaner
from wipsvc.pipeline.describe import TemplateDescriber
from wipsvc.pipeline.extract import StructuredDataExtractor
from wipsvc.pipeline.steps import Backends
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
    ) -> None:
        self._settings = settings
        self._fetcher = fetcher
        self._local_sheets = LocalSheetBackend(store)
        self._google_sheets = google_sheets or GoogleSheetsBackend.from_settings(settings)
        self._llm = llm_client if llm_client is not None else build_llm_client(settings)
        self._http = httpx.AsyncClient(trust_env=False)  # Apps Script calls; operator-configured URLs

    async def open(self, collection: CollectionRecord) -> Backends:
        return Backends(
            sheet=await self._sheet(collection),
            fetcher=self._fetcher,
            extractor=self._extractor(collection),
            describer=self._describer(collection),
            cleaner=self._cleaner(collection),
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
        return LLMExtractor(client, model=llm_model(self._settings, collection.config.llm))

    def _describer(self, collection: CollectionRecord) -> Describer:
        client = self._uses_llm(collection)
        if client is None:
            return TemplateDescriber()
        return LLMDescriber(client, model=llm_model(self._settings, collection.config.llm))

    def _cleaner(self, collection: CollectionRecord) -> Cleaner:
        script = build_apps_script_cleaner(self._settings, collection.config, client=self._http)
        return script if script is not None else PythonCleaner(collection.config.cleaning.rules)

    async def aclose(self) -> None:
        await self._google_sheets.aclose()
        await self._http.aclose()
        if self._llm is not None:
            await self._llm.close()
