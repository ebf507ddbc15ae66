"""Start-up checks that end in one line naming the cause, and the exit codes that go with them.

A service that cannot start should say why in words an operator can act on, not in a
forty-line traceback: exit code 2 for settings that do not parse, 3 for a database that
cannot be used (cannot be created, is not a database, cannot be written, does not answer).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import typer

# The store (and SQLAlchemy) and the settings' errors are imported where they are used: every
# `wipsvc` command imports this module, and most never read the settings or open a database.
if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from wipsvc.store import Store

EXIT_BAD_SETTINGS = 2
EXIT_DATABASE_UNUSABLE = 3

# A PostgreSQL server that does not answer should not keep the operator waiting for minutes.
DATABASE_CHECK_SECONDS = 30.0
_MAX_REASON = 200


class DatabaseUnusable(Exception):
    """The database cannot be used; the message is one line."""


def settings_problem(error: ValidationError | SettingsError) -> str:
    """One line saying which settings are wrong and why (never their values: one may be a secret)."""
    from pydantic_settings import SettingsError

    if isinstance(error, SettingsError):
        return f"bad settings: {_one_line(str(error))}"
    problems = []
    for item in error.errors():
        name = "WIPSVC_" + "_".join(str(part) for part in item["loc"]).upper() if item["loc"] else "settings"
        problems.append(f"{name}: {item['msg']}")
    return "bad setting " + "; ".join(problems)


async def check_database(database_url: str) -> None:
    """Open the database, bring its schema up to date and make sure it can be written;
    raise `DatabaseUnusable` if any of that fails."""
    from wipsvc.store import Store

    where = _shown_url(database_url)
    store: Store | None = None
    try:
        async with asyncio.timeout(DATABASE_CHECK_SECONDS):
            store = await Store.open(database_url)
            await store.check_writable()
    except TimeoutError:
        raise DatabaseUnusable(f"database {where}: no answer within {DATABASE_CHECK_SECONDS:.0f} s") from None
    except Exception as error:  # whatever the driver raises, the operator needs its reason
        raise DatabaseUnusable(f"database {where} cannot be used: {_reason(error)}") from None
    finally:
        if store is not None:
            await store.close()


def require_database(database_url: str, *, as_json: bool = False) -> None:
    """For a command that opens the database: one line and exit 3 if it cannot be used."""
    try:
        asyncio.run(check_database(database_url))
    except DatabaseUnusable as error:
        raise command_error(
            str(error), EXIT_DATABASE_UNUSABLE, "database_unusable", as_json=as_json
        ) from None


def command_error(message: str, exit_code: int, code: str, *, as_json: bool = False) -> typer.Exit:
    """A command's failure: one line on stderr (and, with --json, the API's error shape on
    stdout), then the exit code to raise."""
    typer.echo(f"error: {message}", err=True)
    if as_json:
        error = {"code": code, "message": message, "details": None}
        typer.echo(json.dumps({"success": False, "error": error}, indent=2))
    return typer.Exit(exit_code)


def _reason(error: BaseException) -> str:
    # SQLAlchemy's own message carries the SQL statement; the driver's says what went wrong.
    cause = getattr(error, "orig", None) or error
    text = _one_line(str(cause)) or type(cause).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shown_url(database_url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"
