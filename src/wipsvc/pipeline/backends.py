"""Chooses each collection's adapters: real clients where configured, embedded defaults otherwise."""

from __future__ import annotations

from wipsvc.adapters.base import Cleaner, Describer, Extractor, PageFetcher
from wipsvc.adapters.local_sheet import LocalSheetBackend
from wipsvc.config import Settings
from wipsvc.pipeline.clean import PythonCleaner
from wipsvc.pipeline.describe import TemplateDescriber
from wipsvc.pipeline.extract import StructuredDataExtractor
from wipsvc.pipeline.steps import Backends
from wipsvc.store import CollectionRecord, Store


class BackendFactory:
    """Opens one job's backends. Shared, long-lived clients (HTTP pools) live here."""

    def __init__(self, settings: Settings, store: Store, fetcher: PageFetcher) -> None:
        self._settings = settings
        self._fetcher = fetcher
        self._local_sheets = LocalSheetBackend(store)

    async def open(self, collection: CollectionRecord) -> Backends:
        config = collection.config
        sheet = await self._local_sheets.open(collection.name, config)
        return Backends(
            sheet=sheet,
            fetcher=self._fetcher,
            extractor=self._extractor(collection),
            describer=self._describer(collection),
            cleaner=self._cleaner(collection),
        )

    def _extractor(self, collection: CollectionRecord) -> Extractor:
        return StructuredDataExtractor()

    def _describer(self, collection: CollectionRecord) -> Describer:
        return TemplateDescriber()

    def _cleaner(self, collection: CollectionRecord) -> Cleaner:
        return PythonCleaner(collection.config.cleaning.rules)

    async def aclose(self) -> None:
        """Close shared clients."""
