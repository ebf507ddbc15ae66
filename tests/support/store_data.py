"""Rows for store tests: products in a collection, and fresh job ids."""

from __future__ import annotations

import uuid

from wipsvc.store import Store


async def add_products(store: Store, collection: str, count: int) -> list[int]:
    """``count`` new products of ``collection`` (created if need be), with SKUs unique to the call."""
    await store.collections.ensure(collection)
    prefix = uuid.uuid4().hex[:6]
    return await store.collections.create_products(
        collection, [(f"{prefix}-{i}", f"https://shop.example/{i}") for i in range(count)]
    )


def new_job_id() -> str:
    return str(uuid.uuid4())
