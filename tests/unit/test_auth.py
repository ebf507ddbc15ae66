"""Keys: their form, hashing and constant-time comparison; who may call; the rate limiter."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest

from wipsvc import auth, keys_cli
from wipsvc.api.limits import RateLimiter
from wipsvc.auth import (
    Principal,
    Unauthorized,
    authenticate,
    create_key,
    generate_key,
    hash_key,
    is_loopback,
    key_matches,
    key_prefix,
    refuse_open_bind,
)
from wipsvc.store import Store


def test_keys_are_random_and_name_their_prefix() -> None:
    key, prefix = generate_key()
    assert key.startswith(f"wip_{prefix}_") and len(prefix) == 8
    assert len(key.split("_", 2)[2]) == 43  # 32 random bytes, URL-safe base64
    assert key_prefix(key) == prefix
    assert len({generate_key()[0] for _ in range(200)}) == 200
    assert keys_cli.KEY_SCHEME == auth.KEY_SCHEME


@pytest.mark.parametrize(
    "text",
    [
        "",
        "wip_",
        "wip_0123abcd",
        "wip_0123ABCD_" + "a" * 43,
        "key_0123abcd_" + "a" * 43,
        "wip_0123abcd_short",
    ],
)
def test_malformed_keys_have_no_prefix(text: str) -> None:
    assert key_prefix(text) is None


def test_only_the_hash_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    key, _ = generate_key()
    stored = hash_key(key)
    assert stored == hashlib.sha256(key.encode()).hexdigest() and key not in stored
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert key_matches(key, stored)
    assert not key_matches(key + "x", stored)
    assert not key_matches(generate_key()[0], stored)
    assert len(calls) == 3 and all(len(a) == len(b) == 64 for a, b in calls)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_binds() -> None:
    refuse_open_bind("127.0.0.1", keys_exist=False)
    refuse_open_bind("0.0.0.0", keys_exist=True)
    with pytest.raises(auth.InsecureBind, match=r"refusing to serve on '0\.0\.0\.0': no API keys exist"):
        refuse_open_bind("0.0.0.0", keys_exist=False)


def test_principals() -> None:
    scoped = Principal(3, "0123abcd", frozenset({"sinks"}), "127.0.0.1")
    assert scoped.may_see("sinks") and not scoped.may_see("taps") and scoped.rate_key == "key:3"
    anyone = Principal(None, None, None, "127.0.0.2")
    assert anyone.may_see("taps") and anyone.rate_key == "client:127.0.0.2"


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(sqlite_url)
    yield opened
    await opened.close()


async def test_authentication(store: Store) -> None:
    keys = store.keys
    # No key exists: open, on loopback only; a key sent anyway is ignored.
    assert (await authenticate(keys, None, client="c", via_loopback=True)).collections is None
    assert (await authenticate(keys, "wip_0123abcd_x", client="c", via_loopback=True)).key_id is None
    with pytest.raises(Unauthorized, match="only on a loopback"):
        await authenticate(keys, None, client="c", via_loopback=False)

    new = await create_key(keys, ["sinks", "taps", "sinks"], label="ci")
    assert new.record.collections == frozenset({"sinks", "taps"}) and new.record.key_hash == hash_key(new.key)
    principal = await authenticate(keys, new.key, client="c", via_loopback=False)
    assert (principal.key_id, principal.collections) == (new.record.id, frozenset({"sinks", "taps"}))
    record = await keys.get(new.record.id)
    assert record is not None and record.last_used_at is not None

    for presented, message in (
        (None, "API key required"),
        ("nonsense", "invalid"),
        (new.key[:-1] + "?", "invalid"),
    ):
        with pytest.raises(Unauthorized, match=message):
            await authenticate(keys, presented, client="c", via_loopback=True)
    await keys.revoke(new.record.id)
    with pytest.raises(Unauthorized, match="revoked"):
        await authenticate(keys, new.key, client="c", via_loopback=True)
    # With every key revoked, the service stays closed.
    with pytest.raises(Unauthorized, match="API key required"):
        await authenticate(keys, None, client="c", via_loopback=True)
    assert (await create_key(keys, None)).record.collections is None


def test_rate_limiter_refills_evenly() -> None:
    now = [0.0]
    limiter = RateLimiter(6, clock=lambda: now[0])  # one token every 10 s, bursts of 6
    assert [limiter.acquire("a") for _ in range(6)] == [0.0] * 6
    assert limiter.acquire("a") == pytest.approx(10.0)
    assert limiter.acquire("b") == 0.0  # callers are counted apart
    now[0] = 4.0
    assert limiter.acquire("a") == pytest.approx(6.0)
    now[0] = 10.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(10.0)
    now[0] = 1000.0
    assert [limiter.acquire("a") for _ in range(7)][-2:] == [0.0, pytest.approx(10.0)]
