"""The embedded worksheet: rows in wipsvc's own database, numbered like a real sheet."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from wipsvc.adapters.base import SheetSession
from wipsvc.collection import CollectionConfig
from wipsvc.store import Store


class LocalSheetBackend:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def open(self, collection: str, config: CollectionConfig) -> SheetSession:
        session = LocalSheetSession(self._store, collection, config)
        await session.load()
        return session


class LocalSheetSession:
    """Like the Google session: the SKU column is read once, appends go after the last row."""

    def __init__(self, store: Store, collection: str, config: CollectionConfig) -> None:
        self._repo = store.collections
        self._collection = collection
        self._worksheet = config.sheet.worksheet
        self._columns = config.columns
        self._rows_by_sku: dict[str, int] = {}
        # Serialises find-then-append for one SKU within the job.
        self._append_lock = asyncio.Lock()

    async def refresh(self) -> None:
        self._rows_by_sku.clear()
        await self.load()

    async def load(self) -> None:
        sku_column = self._columns["sku"]
        for row_num, cells in await self._repo.sheet_rows(self._collection, self._worksheet):
            sku = cells.get(sku_column)
            if row_num > 1 and sku:
                self._rows_by_sku.setdefault(str(sku), row_num)

    async def find_row(self, sku: str) -> int | None:
        return self._rows_by_sku.get(sku)

    async def append_row(self, sku: str, url: str) -> int:
        async with self._append_lock:
            if sku in self._rows_by_sku:
                return self._rows_by_sku[sku]
            header = {letter: field for field, letter in self._columns.items()}
            row_num = await self._repo.sheet_append(
                self._collection, self._worksheet, header, self._cells({"sku": sku, "url": url})
            )
            self._rows_by_sku[sku] = row_num
            return row_num

    async def write_fields(self, row_num: int, values: Mapping[str, str]) -> None:
        await self._repo.sheet_write(self._collection, self._worksheet, row_num, self._cells(values))

    async def close(self) -> None:
        self._rows_by_sku.clear()

    def _cells(self, values: Mapping[str, str]) -> dict[str, str]:
        return {self._columns[name]: value for name, value in values.items() if name in self._columns}
