"""`wipsvc collections set NAME CONFIG.json`: an operator writes a collection's settings
straight into the service's database, as `wipsvc keys` does for keys.

The file holds what `PUT /api/collections/{name}` takes, and is checked the same way: credential
files named relative to `WIPSVC_CREDENTIALS_DIR`, a web-app URL the address policy accepts. It
may set every field, the operator fields included; the masked secret of a GET keeps the stored one.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wipsvc.collection import COLLECTION_NAME_PATTERN
from wipsvc.startup import EXIT_BAD_SETTINGS, command_error, require_database

if TYPE_CHECKING:
    from wipsvc.config import Settings

# Matches wipsvc.api.deps.RESERVED_NAMES (not imported: the CLI starts without the web layer).
_RESERVED_NAMES = frozenset({"collections", "healthz", "readyz", "docs"})


def _fail(message: str, as_json: bool) -> typer.Exit:
    # A usage error: bad name, file or settings.
    return command_error(message, EXIT_BAD_SETTINGS, "usage_error", as_json=as_json)


def set_collection(
    name: Annotated[str, typer.Argument(help="The collection's name (created if it does not exist).")],
    config_file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="JSON file with the settings."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as one JSON object.")] = False,
) -> None:
    """Create or replace a collection's settings, the ones only an admin may change included
    (written straight into the database: run it on the server's machine)."""
    from pydantic import ValidationError

    from wipsvc.collection import CollectionConfig
    from wipsvc.config import Settings

    if not re.fullmatch(COLLECTION_NAME_PATTERN, name) or name in _RESERVED_NAMES:
        raise _fail(f"invalid collection name {name!r}", as_json)
    try:
        config = CollectionConfig.model_validate(json.loads(config_file.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:  # ValidationError is a ValueError
        detail = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
            if isinstance(error, ValidationError)
            else " ".join(str(error).split())
        )
        raise _fail(f"{config_file}: {detail}", as_json) from None
    settings = Settings()
    for line in settings.database_notice():
        typer.echo(line, err=True)
    require_database(settings.database_url, as_json=as_json)
    try:
        asyncio.run(_store(settings, name, config))
    except ValueError as error:  # UnusableSetting
        raise _fail(str(error), as_json) from None
    if as_json:
        typer.echo(json.dumps({"success": True, "collection_name": name}, indent=2))
        return
    typer.echo(f"Stored the settings of collection '{name}'.")


async def _store(settings: Settings, name: str, config: object) -> None:
    from wipsvc.adapters.scraper import SafeFetcher
    from wipsvc.collection import CollectionConfig
    from wipsvc.collection_access import check_reach, merge_settings
    from wipsvc.store import Store

    assert isinstance(config, CollectionConfig)
    store = await Store.open(settings.database_url)
    guard = SafeFetcher.from_settings(settings)
    try:
        stored = await store.collections.get(name)
        stored_config = stored.config if stored is not None else None
        merged = merge_settings(config, stored_config, is_admin=True)
        await check_reach(merged, stored_config, credentials_dir=settings.credentials_dir, vet_url=guard.vet)
        await store.collections.put(name, merged)
    finally:
        await guard.aclose()
        await store.close()
