"""API keys: making them, checking them, and who a caller is once checked.

A key reads `wip_<prefix>_<secret>`. Only its SHA-256 is stored: the secret carries 256
random bits, so a fast hash is enough (nothing to brute-force) and lets every request be
checked cheaply. The prefix is not secret; it finds the stored hash and names the key in
listings. Keys are never logged.

With no key created the service is open, but only where nobody else can reach it: bound
to a loopback address, and answering requests that arrived on one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wipsvc.config import Settings
from wipsvc.store import Conflict, Store
from wipsvc.store.keys_repo import ApiKeyRecord, KeysRepository

KEY_SCHEME = "wip"
_PREFIX_BYTES = 4  # 8 hex characters: short enough to read, plenty for a few thousand keys
_SECRET_BYTES = 32
_KEY_PATTERN = re.compile(rf"^{KEY_SCHEME}_([0-9a-f]{{{2 * _PREFIX_BYTES}}})_[A-Za-z0-9_-]{{20,100}}$")
# Compared against when no stored key matches, so both paths do the same work.
_NO_HASH = "0" * 64


class Unauthorized(Exception):
    """No usable key; the message says which (never echoing the key)."""


class InsecureBind(RuntimeError):
    """Serving on a non-loopback address without any API key."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's holder, or anyone on loopback in open mode.

    ``is_admin`` callers (admin keys, and the local caller of an open service) may also change
    what a collection connects to or reads: its spreadsheet, credentials, script and web app.
    """

    key_id: int | None  # None: open mode
    key_prefix: str | None
    collections: frozenset[str] | None  # None: every collection
    client: str  # the caller's address (the rate-limit identity in open mode)
    is_admin: bool = False

    def may_see(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    @property
    def rate_key(self) -> str:
        return f"key:{self.key_id}" if self.key_id is not None else f"client:{self.client}"


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str  # shown once, never stored
    record: ApiKeyRecord


def generate_key() -> tuple[str, str]:
    """A new `(key, prefix)`."""
    prefix = secrets.token_hex(_PREFIX_BYTES)
    return f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}", prefix


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = _KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def key_matches(key: str, stored_hash: str) -> bool:
    """Constant-time comparison of the key's hash with a stored one."""
    return hmac.compare_digest(hash_key(key).encode(), stored_hash.encode())


async def create_key(
    keys: KeysRepository,
    collections: Sequence[str] | None,
    *,
    label: str | None = None,
    is_admin: bool = False,
) -> NewKey:
    """Make and store a key for `collections` (None: every collection); an admin key reaches
    every collection."""
    for _ in range(5):
        key, prefix = generate_key()
        try:
            record = await keys.create(prefix, hash_key(key), collections, label=label, is_admin=is_admin)
        except Conflict:
            continue  # the random prefix is taken (rare): draw another
        return NewKey(key, record)
    raise RuntimeError("could not find a free key prefix")


async def authenticate(
    keys: KeysRepository, presented: str | None, *, client: str, via_loopback: bool
) -> Principal:
    """The caller behind `presented` (the key, if any); raises `Unauthorized`."""
    if presented:
        prefix = key_prefix(presented)
        record = await keys.by_prefix(prefix) if prefix else None
        matched = key_matches(presented, record.key_hash if record else _NO_HASH)
        if record is not None and matched:
            if record.revoked:
                raise Unauthorized("API key revoked")
            await keys.record_use(record.id)
            return Principal(record.id, record.prefix, record.collections, client, is_admin=record.is_admin)
        if await keys.any_exist():
            raise Unauthorized("invalid API key")
        # No key exists: the service runs open, and a key a client sends anyway changes nothing.
    elif await keys.any_exist():
        raise Unauthorized("API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    if not via_loopback:
        raise Unauthorized("no API keys exist, so the service answers only on a loopback address")
    # Open mode: only this machine can reach the service, so its caller is the operator.
    return Principal(None, None, None, client, is_admin=True)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) is a loopback address; names that could
    resolve anywhere are not."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def arrived_via_loopback(server: Sequence[Any] | None) -> bool:
    """Whether a connection came in on a loopback address, from its ASGI `scope["server"]`
    (open mode answers only those)."""
    if not server:
        return True  # a Unix socket: reachable only on this machine
    host = str(server[0])
    return host.startswith("/") or is_loopback(host)


def refuse_open_bind(host: str, keys_exist: bool) -> None:
    if keys_exist or is_loopback(host):
        return
    raise InsecureBind(
        f"refusing to serve on {host!r}: no API keys exist, so anyone who can reach that address "
        "could use the service. Create a key first (`wipsvc keys create --collections NAME,…` or "
        "`--all`), or bind to a loopback address such as 127.0.0.1."
    )


async def check_bind(settings: Settings) -> None:
    """Raise `InsecureBind` if serving on `settings.host` would leave the service open."""
    if is_loopback(settings.host):
        return  # no need to open the database
    store = await Store.open(settings.database_url)
    try:
        keys_exist = await store.keys.any_exist()
    finally:
        await store.close()
    refuse_open_bind(settings.host, keys_exist)
