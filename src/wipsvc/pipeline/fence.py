"""Self-fencing: a job's outside effects wait for its lease guard (:mod:`wipsvc.store.lease`).

Every Sheets write, Apps Script run and LLM call of a job starts only while the job's lease is
certainly valid for longer than such calls take (their observed p95); otherwise it waits for the
next renewal, and once the lease is lost it raises ``LeaseLost`` so that the product stops
without writing. Google Sheets writes are checked inside the Sheets session itself, right before
each request leaves (after coalescing and quota waits); other backends are checked here, before
the call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from wipsvc.adapters.base import Backends, Cleaner, Describer, Extractor, FetchedPage, SheetSession
from wipsvc.adapters.google_sheets import GoogleSheetsSession
from wipsvc.domain.products import Descriptions, ExtractedProduct, TokenUsage
from wipsvc.store.lease import LeaseGuard


def fenced_backends(backends: Backends, guard: LeaseGuard) -> Backends:
    """The same backends (and the same class), each outside effect behind ``guard``."""
    sheet = backends.sheet
    if isinstance(sheet, GoogleSheetsSession):
        sheet.fence_with(guard)
    else:
        sheet = FencedSheet(sheet, guard)
    return dataclasses.replace(
        backends,
        sheet=sheet,
        extractor=FencedExtractor(backends.extractor, guard),
        describer=FencedDescriber(backends.describer, guard),
        cleaner=FencedCleaner(backends.cleaner, guard),
    )


class FencedSheet:
    def __init__(self, inner: SheetSession, guard: LeaseGuard) -> None:
        self._inner = inner
        self._guard = guard

    async def find_row(self, sku: str) -> int | None:
        return await self._inner.find_row(sku)

    async def refresh(self) -> None:
        await self._inner.refresh()

    async def append_row(self, sku: str, url: str) -> int:
        async with self._guard.fenced("sheet_write"):
            return await self._inner.append_row(sku, url)

    async def write_fields(self, row_num: int, values: Mapping[str, str]) -> None:
        async with self._guard.fenced("sheet_write"):
            await self._inner.write_fields(row_num, values)

    async def close(self) -> None:
        await self._inner.close()


class FencedExtractor:
    def __init__(self, inner: Extractor, guard: LeaseGuard) -> None:
        self._inner = inner
        self._guard = guard

    async def extract(
        self, page: FetchedPage, *, sku: str, usage: TokenUsage | None = None
    ) -> ExtractedProduct:
        async with self._guard.fenced("extract"):
            return await self._inner.extract(page, sku=sku, usage=usage)


class FencedDescriber:
    def __init__(self, inner: Describer, guard: LeaseGuard) -> None:
        self._inner = inner
        self._guard = guard

    async def describe(
        self, product: ExtractedProduct, *, sku: str, usage: TokenUsage | None = None
    ) -> Descriptions:
        async with self._guard.fenced("describe"):
            return await self._inner.describe(product, sku=sku, usage=usage)


class FencedCleaner:
    def __init__(self, inner: Cleaner, guard: LeaseGuard) -> None:
        self._inner = inner
        self._guard = guard

    def transform(self, values: dict[str, str]) -> dict[str, str]:
        return self._inner.transform(values)

    async def run(self, *, row_num: int, sku: str) -> None:
        async with self._guard.fenced("clean"):
            await self._inner.run(row_num=row_num, sku=sku)
