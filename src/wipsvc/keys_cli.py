"""`wipsvc keys …`: create, list and revoke API keys, straight in the service's database.

Run on the server's machine (it needs the database URL, not a running server). A new key
is printed once, alone on stdout (so `KEY=$(wipsvc keys create --all)` works); only its
hash is stored.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from wipsvc.collection import COLLECTION_NAME_PATTERN
from wipsvc.startup import EXIT_BAD_SETTINGS, command_error, require_database

if TYPE_CHECKING:
    from wipsvc.store import Store
    from wipsvc.store.keys_repo import ApiKeyRecord

# Matches wipsvc.auth.KEY_SCHEME; not imported, so that `wipsvc` starts without the database layer.
KEY_SCHEME = "wip"

keys_app = typer.Typer(
    help="API keys: each reaches only its collections. With no key created the service runs "
    "open, and only on a loopback address.",
    no_args_is_help=True,
)

T = TypeVar("T")

JsonOption = typer.Option(False, "--json", help="Print the outcome as one JSON object.")


def _with_store(action: Callable[[Store], Awaitable[T]], *, as_json: bool = False) -> T:
    from wipsvc.config import Settings
    from wipsvc.store import Store

    settings = Settings()
    for line in settings.database_notice():
        typer.echo(line, err=True)
    require_database(settings.database_url, as_json=as_json)

    async def run() -> T:
        store = await Store.open(settings.database_url)
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _fail(message: str, as_json: bool = False) -> typer.Exit:
    """A usage error: exit 2, like every command's."""
    return command_error(message, EXIT_BAD_SETTINGS, "usage_error", as_json=as_json)


@keys_app.command("create")
def create(
    collections: str | None = typer.Option(
        None, "--collections", help="Comma-separated collections the key may use, e.g. sinks,taps."
    ),
    all_collections: bool = typer.Option(False, "--all", help="The key may use every collection."),
    admin: bool = typer.Option(
        False,
        "--admin",
        help="An admin key: every collection, and it may change what a collection connects to or "
        "reads (spreadsheet, credentials, Apps Script, web app).",
    ),
    label: str | None = typer.Option(None, "--label", help="A note on who or what holds the key."),
    as_json: bool = JsonOption,
) -> None:
    """Create a key and print it once (only its hash is kept)."""
    if admin and collections is not None:
        raise _fail("an admin key reaches every collection: give --admin without --collections", as_json)
    if not admin and all_collections == (collections is not None):
        raise _fail("give either --collections NAME,… or --all (or --admin)", as_json)
    names: list[str] | None = None
    if collections is not None:
        names = sorted({part.strip() for part in collections.split(",") if part.strip()})
        bad = [name for name in names if not re.fullmatch(COLLECTION_NAME_PATTERN, name)]
        if not names or bad:
            raise _fail(f"invalid collection names: {', '.join(bad) or collections!r}", as_json)
    if label is not None and len(label) > 100:
        raise _fail("--label is limited to 100 characters", as_json)
    from wipsvc.auth import create_key

    new = _with_store(
        lambda store: create_key(store.keys, names, label=label, is_admin=admin), as_json=as_json
    )
    reach = "every collection" if names is None else f"collections: {', '.join(names)}"
    role = "admin key" if admin else "API key"
    typer.echo(f"Created {role} {new.record.id} ({_name(new.record)}) for {reach}.", err=True)
    typer.echo("Copy it now: it is shown only this once.", err=True)
    if as_json:
        typer.echo(json.dumps({"success": True, "api_key": new.key, "key": _as_dict(new.record)}, indent=2))
        return
    typer.echo(new.key)


@keys_app.command("list")
def list_keys(
    as_json: bool = typer.Option(False, "--json", help="Print the keys as one JSON object."),
) -> None:
    """Every key: id, prefix, collections, created, last used, revoked (never the key itself)."""
    records = _with_store(lambda store: store.keys.all(), as_json=as_json)
    if as_json:
        typer.echo(json.dumps({"success": True, "keys": [_as_dict(record) for record in records]}, indent=2))
        return
    if not records:
        typer.echo("No API keys: the service runs open (and only on a loopback address).")
        return
    header = ("ID", "PREFIX", "ROLE", "COLLECTIONS", "CREATED", "LAST USED", "REVOKED", "LABEL")
    rows = [header] + [
        (
            str(r.id),
            _name(r),
            "admin" if r.is_admin else "collection",
            "*" if r.collections is None else ",".join(sorted(r.collections)),
            _when(r.created_at),
            _when(r.last_used_at),
            _when(r.revoked_at),
            r.label or "",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@keys_app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="The key's id, or its prefix as listed (wip_…)."),
    as_json: bool = JsonOption,
) -> None:
    """Revoke a key: refused from then on (open Socket.IO connections: once they reconnect)."""
    from wipsvc.store import NotFound

    async def run(store: Store) -> ApiKeyRecord:
        if key.isdigit():
            return await store.keys.revoke(int(key))
        found = await store.keys.by_prefix(key.removeprefix(f"{KEY_SCHEME}_"))
        if found is None:
            raise NotFound(f"no API key with prefix {key}")
        return await store.keys.revoke(found.id)

    try:
        record = _with_store(run, as_json=as_json)
    except NotFound as error:
        raise _fail(str(error), as_json) from None
    if as_json:
        typer.echo(json.dumps({"success": True, "key": _as_dict(record)}, indent=2))
        return
    typer.echo(f"Revoked API key {record.id} ({_name(record)}) at {_when(record.revoked_at)}.")


def _name(record: ApiKeyRecord) -> str:
    return f"{KEY_SCHEME}_{record.prefix}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _as_dict(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "prefix": _name(record),
        "collections": None if record.collections is None else sorted(record.collections),
        "is_admin": record.is_admin,
        "label": record.label,
        "created_at": record.created_at.isoformat(),
        "last_used_at": record.last_used_at.isoformat() if record.last_used_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }
