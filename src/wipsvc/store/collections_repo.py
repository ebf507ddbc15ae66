"""SQL for collections, WIP products and the embedded worksheet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from wipsvc.collection import CollectionConfig, stored_form
from wipsvc.domain.statuses import WipStatus
from wipsvc.store.database import Database
from wipsvc.store.records import CollectionRecord, Conflict, NotFound, ProductRecord
from wipsvc.store.tables import collections, sheet_rows, utcnow, wip_products
from wipsvc.text import clean_json


class CollectionsRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- collections -----------------------------------------------------------------------

    async def get(self, name: str) -> CollectionRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(collections).where(collections.c.name == name))).mappings()
            found = row.first()
        return CollectionRecord.from_row(found) if found else None

    async def all(self) -> list[CollectionRecord]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(collections).order_by(collections.c.name))).mappings()
            return [CollectionRecord.from_row(row) for row in rows]

    async def product_counts(self) -> dict[str, dict[str, int]]:
        """Products per collection and status."""
        query = sa.select(wip_products.c.collection_name, wip_products.c.status, sa.func.count()).group_by(
            wip_products.c.collection_name, wip_products.c.status
        )
        counts: dict[str, dict[str, int]] = {}
        async with self.db.read() as conn:
            for name, status, count in await conn.execute(query):
                counts.setdefault(name, {})[status] = count
        return counts

    async def put(self, name: str, config: CollectionConfig) -> CollectionRecord:
        now = utcnow()
        data = stored_form(config)
        async with self.db.write() as conn:
            updated = await conn.execute(
                collections.update().where(collections.c.name == name).values(config=data, updated_at=now)
            )
            if updated.rowcount == 0:
                await conn.execute(
                    collections.insert().values(name=name, config=data, created_at=now, updated_at=now)
                )
        record = await self.get(name)
        assert record is not None
        return record

    async def ensure(self, name: str) -> CollectionRecord:
        """The collection, created with the default backends on first use."""
        existing = await self.get(name)
        if existing is not None:
            return existing
        now = utcnow()
        data = stored_form(CollectionConfig())
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    collections.insert().values(name=name, config=data, created_at=now, updated_at=now)
                )
        except IntegrityError:
            pass  # created concurrently by another request or instance
        record = await self.get(name)
        assert record is not None
        return record

    # -- WIP products ----------------------------------------------------------------------

    async def create_products(self, collection: str, products: Sequence[tuple[str, str]]) -> list[int]:
        """Insert products; every SKU must be new in the collection."""
        skus = [sku for sku, _ in products]
        now = utcnow()
        async with self.db.write() as conn:
            taken = (
                await conn.execute(
                    sa.select(wip_products.c.sku, wip_products.c.id).where(
                        wip_products.c.collection_name == collection, wip_products.c.sku.in_(skus)
                    )
                )
            ).all()
            if taken:
                raise Conflict(
                    f"SKUs already exist in collection '{collection}': {', '.join(s for s, _ in taken)}",
                    existing=dict(taken),
                )
            ids = []
            for sku, url in products:
                result = await conn.execute(
                    wip_products.insert()
                    .values(
                        collection_name=collection,
                        sku=sku,
                        url=url,
                        status=WipStatus.PENDING.value,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(wip_products.c.id)
                )
                ids.append(result.scalar_one())
        return ids

    async def list_products(
        self,
        collection: str,
        *,
        status: WipStatus | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[ProductRecord], int]:
        where = [wip_products.c.collection_name == collection]
        if status is not None:
            where.append(wip_products.c.status == status.value)
        if search:
            pattern = f"%{search.lower()}%"
            where.append(
                sa.or_(
                    sa.func.lower(wip_products.c.sku).like(pattern),
                    sa.func.lower(wip_products.c.url).like(pattern),
                )
            )
        query = sa.select(wip_products).where(*where).order_by(wip_products.c.id).limit(limit).offset(offset)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = (
                await conn.execute(sa.select(sa.func.count()).select_from(wip_products).where(*where))
            ).scalar_one()
        return [ProductRecord.from_row(row) for row in rows], total

    async def get_products(self, collection: str, wip_ids: Sequence[int]) -> dict[int, ProductRecord]:
        query = sa.select(wip_products).where(
            wip_products.c.collection_name == collection, wip_products.c.id.in_(list(wip_ids))
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {row["id"]: ProductRecord.from_row(row) for row in rows}

    async def get_product(self, collection: str, wip_id: int) -> ProductRecord:
        found = await self.get_products(collection, [wip_id])
        if wip_id not in found:
            raise NotFound(f"WIP product {wip_id} not found in collection '{collection}'")
        return found[wip_id]

    async def reset_product(self, collection: str, wip_id: int) -> ProductRecord:
        """Put a stuck or failed product back to `pending` (not while a job holds it)."""
        product = await self.get_product(collection, wip_id)
        async with self.db.write() as conn:
            result = await conn.execute(
                wip_products.update()
                .where(wip_products.c.id == wip_id, wip_products.c.active_job_id.is_(None))
                .values(status=WipStatus.PENDING.value, error=None, updated_at=utcnow())
            )
        if result.rowcount == 0:
            raise Conflict(
                f"WIP product {wip_id} is in active job {product.active_job_id}; cancel it first",
                job_id=product.active_job_id,
            )
        return await self.get_product(collection, wip_id)

    # -- the embedded worksheet ------------------------------------------------------------

    async def sheet_append(
        self, collection: str, worksheet: str, header: Mapping[str, str], cells: Mapping[str, str]
    ) -> int:
        """Append a row after the last one (writing the header row first if the sheet is empty)."""
        key = (sheet_rows.c.collection_name == collection, sheet_rows.c.worksheet == worksheet)
        header, cells = clean_json(dict(header)), clean_json(dict(cells))  # scraped text, among others
        async with self.db.write() as conn:
            last = (await conn.execute(sa.select(sa.func.max(sheet_rows.c.row_num)).where(*key))).scalar()
            if last is None:
                await conn.execute(
                    sheet_rows.insert().values(
                        collection_name=collection, worksheet=worksheet, row_num=1, cells=dict(header)
                    )
                )
                last = 1
            row_num = int(last) + 1
            await conn.execute(
                sheet_rows.insert().values(
                    collection_name=collection, worksheet=worksheet, row_num=row_num, cells=dict(cells)
                )
            )
        return row_num

    async def sheet_write(
        self, collection: str, worksheet: str, row_num: int, cells: Mapping[str, str]
    ) -> None:
        key = (
            sheet_rows.c.collection_name == collection,
            sheet_rows.c.worksheet == worksheet,
            sheet_rows.c.row_num == row_num,
        )
        cells = clean_json(dict(cells))
        async with self.db.write() as conn:
            current = (await conn.execute(sa.select(sheet_rows.c.cells).where(*key))).scalar()
            if current is None:
                raise NotFound(f"row {row_num} does not exist in {collection}/{worksheet}")
            await conn.execute(sheet_rows.update().where(*key).values(cells={**current, **cells}))

    async def sheet_rows(self, collection: str, worksheet: str) -> list[tuple[int, dict[str, Any]]]:
        query = (
            sa.select(sheet_rows.c.row_num, sheet_rows.c.cells)
            .where(sheet_rows.c.collection_name == collection, sheet_rows.c.worksheet == worksheet)
            .order_by(sheet_rows.c.row_num)
        )
        async with self.db.read() as conn:
            return [(int(num), dict(cells)) for num, cells in await conn.execute(query)]
