"""SQL for API keys. The store sees only hashes and prefixes; generating and checking
keys is `wipsvc.auth`'s business."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError

from wipsvc.store.database import Database
from wipsvc.store.records import Conflict, NotFound
from wipsvc.store.tables import api_keys, utcnow

# Recording every use would turn each request into a write (and SQLite has one writer);
# "last used" to the minute is all a listing needs.
_TOUCH_INTERVAL_SECONDS = 60.0
# Whether any key exists is asked by every request. Keys are never deleted, so once one is seen
# the answer stays yes; "none yet" is asked again after this long, so that a first key made by
# another process (`wipsvc keys create`) closes the open service within it. Until then the service
# answers only on loopback anyway.
_NO_KEYS_RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: int
    prefix: str
    key_hash: str
    collections: frozenset[str] | None  # None: every collection
    is_admin: bool
    label: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def from_row(cls, row: RowMapping) -> ApiKeyRecord:
        return cls(
            id=row["id"],
            prefix=row["prefix"],
            key_hash=row["key_hash"],
            collections=None if row["all_collections"] else frozenset(row["collections"] or ()),
            is_admin=bool(row["is_admin"]),
            label=row["label"],
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
        )


class KeysRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._touched: dict[int, float] = {}  # key id -> monotonic time of the last recorded use
        self._some_exist = False
        self._none_seen_at = float("-inf")  # monotonic time of the last "no key exists"

    async def create(
        self,
        prefix: str,
        key_hash: str,
        collections: Sequence[str] | None,
        *,
        label: str | None = None,
        is_admin: bool = False,
    ) -> ApiKeyRecord:
        """Store a new key (`collections=None`: every collection; an admin key always reaches
        every collection). A taken prefix is a Conflict."""
        if is_admin:
            collections = None
        try:
            async with self.db.write() as conn:
                result = await conn.execute(
                    api_keys.insert()
                    .values(
                        prefix=prefix,
                        key_hash=key_hash,
                        all_collections=collections is None,
                        is_admin=is_admin,
                        collections=sorted(set(collections or ())),
                        label=label,
                        created_at=utcnow(),
                    )
                    .returning(api_keys.c.id)
                )
                key_id = result.scalar_one()
            self._some_exist = True
        except IntegrityError as error:
            raise Conflict(f"key prefix {prefix} is taken") from error
        record = await self.get(key_id)
        assert record is not None
        return record

    async def get(self, key_id: int) -> ApiKeyRecord | None:
        return await self._one(api_keys.c.id == key_id)

    async def by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        return await self._one(api_keys.c.prefix == prefix)

    async def all(self) -> list[ApiKeyRecord]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(api_keys).order_by(api_keys.c.id))).mappings()
            return [ApiKeyRecord.from_row(row) for row in rows]

    async def any_exist(self) -> bool:
        """Whether any key was ever created; revoked keys count, so revoking the last key
        locks the service instead of opening it. "No" may be up to a second old (see above)."""
        if self._some_exist:
            return True
        if time.monotonic() - self._none_seen_at < _NO_KEYS_RECHECK_SECONDS:
            return False
        async with self.db.read() as conn:
            found = (await conn.execute(sa.select(api_keys.c.id).limit(1))).first()
        self._some_exist = found is not None
        if not self._some_exist:
            self._none_seen_at = time.monotonic()
        return self._some_exist

    async def still_valid(self, key_ids: set[int]) -> set[int]:
        """Those of ``key_ids`` that exist and are not revoked (one query for any number)."""
        if not key_ids:
            return set()
        query = sa.select(api_keys.c.id).where(api_keys.c.id.in_(key_ids), api_keys.c.revoked_at.is_(None))
        async with self.db.read() as conn:
            return set((await conn.execute(query)).scalars())

    async def revoke(self, key_id: int) -> ApiKeyRecord:
        """Revoke a key (revoking it again changes nothing)."""
        async with self.db.write() as conn:
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        record = await self.get(key_id)
        if record is None:
            raise NotFound(f"no API key with id {key_id}")
        return record

    async def record_use(self, key_id: int) -> None:
        """Note that the key was used (at most once a minute per key and process)."""
        now = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < _TOUCH_INTERVAL_SECONDS:
            return
        self._touched[key_id] = now
        async with self.db.write() as conn:
            await conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=utcnow()))

    async def _one(self, where: sa.ColumnElement[bool]) -> ApiKeyRecord | None:
        async with self.db.read() as conn:
            found = (await conn.execute(sa.select(api_keys).where(where))).mappings().first()
        return ApiKeyRecord.from_row(found) if found else None
