"""`wipsvc check-config [COLLECTION]`: do each collection's backends work, without using them?

For every collection (or the one named) and each of its backends — the sheet, the LLM, the
cleaning; the scraper needs no configuration — the check loads the credentials and asks the
service one harmless question: the Google spreadsheet's metadata, the LLM API's model list, an
Apps Script call of a function that does not exist (or a GET of the web app, which runs no
``doPost``). Nothing is written: not to the sheets, not to the database (it is opened without
migrating), and no row is cleaned. Each outcome is one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from wipsvc.collection import CollectionConfig
from wipsvc.credentials import with_resolved_credentials
from wipsvc.domain.errors import StepError

# The settings and the clients (openai, gspread, SQLAlchemy) are imported where a check uses them:
# the `wipsvc` command registers this module's command, and its other commands should not wait.
if TYPE_CHECKING:
    import openai

    from wipsvc.config import Settings
    from wipsvc.store import CollectionRecord

# A check that has not answered by then will not help an operator waiting at a prompt.
CHECK_TIMEOUT_SECONDS = 30.0

Status = Literal["ok", "warning", "failed", "skipped"]
Backend = Literal["database", "collection", "sheet", "llm", "cleaning"]
Check = Callable[[CollectionConfig], Awaitable[tuple[Status, str]]]


@dataclass(frozen=True, slots=True)
class CheckResult:
    collection: str
    backend: Backend
    status: Status
    message: str  # one line

    @property
    def ok(self) -> bool:
        return self.status != "failed"


async def check_config(settings: Settings, collection: str | None) -> list[CheckResult]:
    """The results of every check, collection by collection, in name order."""
    records, problem = await _collections(settings, collection)
    if problem is not None:
        return [problem]
    checker = _Checker(settings)
    try:
        results: list[CheckResult] = []
        for record in records:
            results.extend(await checker.check(record))
        return results
    finally:
        await checker.aclose()


def render(results: list[CheckResult]) -> str:
    """One line per check, aligned, then a summary line."""
    if not results:
        return "no collections are configured: nothing to check"
    name_width = max(len(r.collection) for r in results)
    backend_width = max(len(r.backend) for r in results)
    lines = [
        f"{r.collection:<{name_width}}  {r.backend:<{backend_width}}  {r.status.upper():<7}  {r.message}"
        for r in results
    ]
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "warning", "failed")}
    skipped = len(results) - sum(counts.values())
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    lines.append(f"{len(results)} checks: {summary}" + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines)


def exit_code(results: list[CheckResult]) -> int:
    """0 when nothing failed (warnings and skipped checks included), else 1."""
    return 0 if all(result.ok for result in results) else 1


def check_config_command(
    collection: Annotated[
        str | None, typer.Argument(help="Check only this collection (default: every collection).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as one JSON object.")] = False,
) -> None:
    """Check each collection's sheet, LLM and cleaning backends: credentials and a harmless call."""
    from wipsvc.config import Settings

    settings = Settings()
    for line in settings.database_notice():
        typer.echo(line, err=True)
    results = asyncio.run(check_config(settings, collection))
    if as_json:
        checks = [dataclasses.asdict(result) for result in results]
        typer.echo(json.dumps({"success": True, "ok": exit_code(results) == 0, "checks": checks}, indent=2))
    else:
        typer.echo(render(results))
    raise typer.Exit(exit_code(results))


async def _collections(
    settings: Settings, name: str | None
) -> tuple[list[CollectionRecord], CheckResult | None]:
    from wipsvc.store import Store

    where = name or "*"
    if (missing := _missing_sqlite_file(settings)) is not None:
        # Opening it would create an empty file: a check writes nothing.
        message = f"database file {missing} does not exist (start the server or run `wipsvc db upgrade`)"
        return [], CheckResult(where, "database", "failed", message)
    try:
        store = await Store.open(settings.database_url, upgrade=False)
    except Exception as exc:  # a bad URL or driver: reported like any other failed check
        return [], CheckResult(where, "database", "failed", f"cannot open the database: {_one_line(exc)}")
    try:
        if name is None:
            return await store.collections.all(), None
        record = await store.collections.get(name)
    except Exception as exc:
        message = f"cannot read collections from the database: {_one_line(exc)}"
        return [], CheckResult(where, "database", "failed", message)
    finally:
        await store.close()
    if record is None:
        return [], CheckResult(name, "collection", "failed", f"collection '{name}' does not exist")
    return [record], None


class _Checker:
    """Runs the checks of one collection after another, sharing clients between them."""

    def __init__(self, settings: Settings) -> None:
        from wipsvc.adapters.google_sheets import GoogleSheetsBackend
        from wipsvc.adapters.llm_client import build_llm_client

        self.settings = settings
        # One request each (adapters do not retry) and a short timeout: a check reports, it does
        # not wait out an outage.
        self.sheets = GoogleSheetsBackend.from_settings(settings, timeout=CHECK_TIMEOUT_SECONDS)
        self.llm = build_llm_client(settings, timeout=CHECK_TIMEOUT_SECONDS)
        self._models: list[str] | None = None

    async def check(self, record: CollectionRecord) -> list[CheckResult]:
        config = record.config
        checks: list[tuple[Backend, Check]] = [
            ("sheet", self._sheet),
            ("llm", self._llm),
            ("cleaning", self._cleaning),
        ]
        results = await asyncio.gather(*(_run(name, check, config) for name, check in checks))
        return [CheckResult(record.name, backend, status, message) for backend, (status, message) in results]

    async def aclose(self) -> None:
        await self.sheets.aclose()
        if self.llm is not None:
            await self.llm.close()

    async def _sheet(self, config: CollectionConfig) -> tuple[Status, str]:
        if config.sheet.backend == "local":
            return "ok", f"local worksheet '{config.sheet.worksheet}' in wipsvc's database"
        # A credential name that cannot be used fails here, on one line (a ValueError).
        config = with_resolved_credentials(config, self.settings.credentials_dir, ("sheet",))
        return "ok", await self.sheets.check(config)

    async def _llm(self, config: CollectionConfig) -> tuple[Status, str]:
        from wipsvc.adapters.llm_client import llm_api_key, llm_model

        if not config.llm.enabled:
            return "skipped", "LLM disabled for this collection: structured data and template descriptions"
        if self.llm is None or llm_api_key(self.settings) is None:
            return "skipped", (
                "no LLM API key (WIPSVC_LLM_API_KEY or OPENAI_API_KEY): "
                "structured data and template descriptions"
            )
        base_url, model = self.settings.llm_base_url, llm_model(self.settings, config.llm)
        if self._models is None:
            self._models = await _list_models(self.llm, base_url)
        if model in self._models:
            return "ok", f"LLM API at {base_url} accepted the key; model '{model}' is available"
        listed = ", ".join(self._models[:5]) + (", …" if len(self._models) > 5 else "")
        # Not a failure: some servers (llama.cpp) answer any model name with the one they loaded.
        return "warning", (
            f"LLM API at {base_url} accepted the key but does not list model '{model}' "
            f"({len(self._models)} listed: {listed or 'none'})"
        )

    async def _cleaning(self, config: CollectionConfig) -> tuple[Status, str]:
        # Imported here, not above: the factory pulls in every adapter.
        from wipsvc.adapters.builtin_cleaner import PythonCleaner
        from wipsvc.adapters.factory import cleaner_for

        config = with_resolved_credentials(config, self.settings.credentials_dir, ("cleaning",))
        cleaner = cleaner_for(self.settings, config, timeout=CHECK_TIMEOUT_SECONDS)
        if isinstance(cleaner, PythonCleaner):
            return "ok", "embedded Python cleaning rules"
        try:
            return "ok", await cleaner.check()
        finally:
            await cleaner.aclose()


async def _run(
    backend: Backend, check: Check, config: CollectionConfig
) -> tuple[Backend, tuple[Status, str]]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS + 5):
            status, message = await check(config)
    except StepError as exc:
        return backend, ("failed", _one_line(exc.message))
    except ValueError as exc:  # the cleaners refuse an incomplete configuration this way
        return backend, ("failed", _one_line(exc))
    except TimeoutError:
        return backend, ("failed", f"no answer within {CHECK_TIMEOUT_SECONDS + 5:.0f} s")
    except Exception as exc:  # an adapter's surprise: still one line, and the other checks go on
        return backend, ("failed", f"unexpected {type(exc).__name__}: {_one_line(exc)}")
    return backend, (status, _one_line(message))


async def _list_models(client: openai.AsyncOpenAI, base_url: str) -> list[str]:
    import openai

    from wipsvc.adapters.llm_client import api_message

    try:
        page = await client.models.list()
    except openai.APITimeoutError as exc:
        raise StepError(f"LLM API at {base_url} did not answer in {CHECK_TIMEOUT_SECONDS:.0f} s") from exc
    except openai.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        raise StepError(f"cannot reach the LLM API at {base_url}: {type(cause).__name__}: {cause}") from exc
    except openai.AuthenticationError as exc:
        raise StepError(f"LLM API at {base_url} rejected the API key (401): {api_message(exc)}") from exc
    except openai.APIStatusError as exc:
        raise StepError(
            f"LLM API at {base_url} answered {exc.status_code} to GET /models: {api_message(exc)}"
        ) from exc
    return [model.id for model in page.data]


def _missing_sqlite_file(settings: Settings) -> str | None:
    """The SQLite database's path if the file does not exist (None for other databases)."""
    if not settings.is_sqlite:
        return None
    from sqlalchemy.engine import make_url

    path = make_url(settings.database_url).database
    if not path or path == ":memory:" or Path(path).exists():
        return None
    return path


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
