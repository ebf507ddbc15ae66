"""`check-config` against the fakes: each broken backend is one clear line; nothing is written."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.fakes.apps_script import FakeAppsScript
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.sheets import FakeSheets
from tests.support.live import make_settings
from wipsvc.adapters.apps_script import CHECK_FUNCTION
from wipsvc.check_config import CheckResult, check_config, check_config_command, exit_code, render
from wipsvc.collection import CleaningConfig, CollectionConfig, LLMConfig, SheetConfig
from wipsvc.config import Settings
from wipsvc.store import Store

SA_EMAIL = "wipsvc-check@fake-project.iam.gserviceaccount.com"


class Fakes(NamedTuple):
    oauth: FakeGoogleOAuth
    sheets: FakeSheets
    script: FakeAppsScript
    llm: FakeOpenAI
    credentials_dir: Path  # where collections' credential names point


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[Fakes]:
    with (
        FakeGoogleOAuth() as oauth,
        FakeSheets(oauth) as sheets,
        FakeAppsScript(token_validator=oauth.is_valid) as script,
        FakeOpenAI(api_key="sk-check") as llm,
    ):
        credentials_dir = tmp_path / "credentials"
        credentials_dir.mkdir()
        yield Fakes(oauth, sheets, script, llm, credentials_dir)


def settings_for(database_url: str, fakes: Fakes, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "sheets_api_url": fakes.sheets.url,
        "apps_script_api_url": fakes.script.url,
        "llm_base_url": fakes.llm.base_url,
        "llm_api_key": fakes.llm.api_key,
        "llm_model": "fake-model",
        "credentials_dir": str(fakes.credentials_dir),
    }
    return make_settings(database_url, **(values | overrides))


def good_config(fakes: Fakes, tmp_path: Path) -> CollectionConfig:
    fakes.oauth.write_service_account(fakes.credentials_dir / "sa.json", client_email=SA_EMAIL)
    fakes.oauth.write_authorized_user(fakes.credentials_dir / "user.json")
    spreadsheet_id = fakes.sheets.add_spreadsheet("sheet-1", title="Catalogue", worksheets=["Products"])
    return CollectionConfig(
        sheet=SheetConfig(
            backend="google",
            spreadsheet_id=spreadsheet_id,
            worksheet="Products",
            credentials_file="sa.json",
        ),
        cleaning=CleaningConfig(
            backend="apps_script_api", script_id=fakes.script.script_id, oauth_credentials_file="user.json"
        ),
        llm=LLMConfig(enabled=True),
    )


async def save(database_url: str, collections: dict[str, CollectionConfig]) -> None:
    store = await Store.open(database_url)
    try:
        for name, config in collections.items():
            await store.collections.put(name, config)
    finally:
        await store.close()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def by_backend(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.backend: result for result in results}


async def test_an_all_good_collection_reports_ok_and_writes_nothing(
    sqlite_url: str, fakes: Fakes, tmp_path: Path
) -> None:
    await save(sqlite_url, {"sinks": good_config(fakes, tmp_path), "plain": CollectionConfig()})
    store = await Store.open(sqlite_url)
    before = [(c.name, c.config, c.updated_at) for c in await store.collections.all()]
    await store.close()

    results = await check_config(settings_for(sqlite_url, fakes), None)

    assert [(r.collection, r.backend, r.status) for r in results] == [
        ("plain", "sheet", "ok"),
        ("plain", "llm", "ok"),
        ("plain", "cleaning", "ok"),
        ("sinks", "sheet", "ok"),
        ("sinks", "llm", "ok"),
        ("sinks", "cleaning", "ok"),
    ]
    sinks = by_backend(results[3:])
    assert sinks["sheet"].message == (
        "Google spreadsheet 'Catalogue' (sheet-1), worksheet 'Products' (1000 rows x 26 columns), "
        f"as {SA_EMAIL}"
    )
    assert sinks["llm"].message == (
        f"LLM API at {fakes.llm.base_url} accepted the key; model 'fake-model' is available"
    )
    assert "script script-abc answered" in sinks["cleaning"].message
    assert exit_code(results) == 0
    text = render(results)
    assert text.splitlines()[-1] == "6 checks: 6 ok, 0 warning, 0 failed"
    assert len(text.splitlines()) == 7
    # Only questions were asked: no sheet write, no script run, no completion, no database change.
    assert fakes.sheets.count(kind="write") == 0 and fakes.sheets.count(status=200) == 2
    assert [call.function for call in fakes.script.api_calls] == [CHECK_FUNCTION]
    assert fakes.llm.requests == [] and fakes.llm.model_list_requests == 1  # listed once, for both
    store = await Store.open(sqlite_url)
    assert [(c.name, c.config, c.updated_at) for c in await store.collections.all()] == before
    await store.close()


def _bad_key_file(good: Path) -> str:
    """A copy of a good service-account file with another private key: Google (the fake) refuses it;
    returns its name."""
    info = json.loads(good.read_text())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = good.with_name("bad-key.json")
    path.write_text(json.dumps(info))
    return path.name


@pytest.mark.parametrize(
    "case",
    [
        "missing credentials file",
        "credentials file outside the directory",
        "bad key",
        "unreachable Sheets API",
        "spreadsheet does not exist",
        "worksheet does not exist",
    ],
)
async def test_a_broken_sheet_is_one_clear_line(
    sqlite_url: str, fakes: Fakes, tmp_path: Path, case: str
) -> None:
    config = good_config(fakes, tmp_path)
    overrides: dict[str, Any] = {}
    sheet = config.sheet
    expected: str
    if case == "missing credentials file":
        sheet = sheet.model_copy(update={"credentials_file": "nowhere/sa.json"})
        expected = "credential file 'nowhere/sa.json' does not exist in the credentials directory"
    elif case == "credentials file outside the directory":
        # A path stored before credentials had names, of a file the operator did not move.
        outside = tmp_path / "sa.json"
        outside.write_bytes((fakes.credentials_dir / "sa.json").read_bytes())
        sheet = sheet.model_copy(update={"credentials_file": str(outside)})
        expected = (
            f"credential file {outside} is named by path: move it into {fakes.credentials_dir} "
            "and name it relative to that directory"
        )
    elif case == "bad key":
        bad = _bad_key_file(fakes.credentials_dir / str(sheet.credentials_file))
        sheet = sheet.model_copy(update={"credentials_file": bad})
        expected = f"Google refused a token for {SA_EMAIL}: invalid_grant: Invalid JWT Signature."
    elif case == "unreachable Sheets API":
        overrides["sheets_api_url"] = url = closed_port_url()
        expected = f"cannot reach Google Sheets at {url}: ConnectionError"
    elif case == "spreadsheet does not exist":
        sheet = sheet.model_copy(update={"spreadsheet_id": "no-such-sheet"})
        expected = "Google spreadsheet no-such-sheet not found"
    else:
        sheet = sheet.model_copy(update={"worksheet": "Nope"})
        expected = "worksheet 'Nope' not found in Google spreadsheet sheet-1"
    await save(sqlite_url, {"sinks": config.model_copy(update={"sheet": sheet})})

    results = await check_config(settings_for(sqlite_url, fakes, **overrides), "sinks")

    checks = by_backend(results)
    assert (checks["sheet"].status, checks["sheet"].message) == ("failed", expected)
    assert checks["llm"].status == checks["cleaning"].status == "ok"  # the others are not affected
    assert exit_code(results) == 1
    line = next(line for line in render(results).splitlines() if " sheet " in line)
    assert line.split()[:3] == ["sinks", "sheet", "FAILED"] and line.endswith(expected)


@pytest.mark.parametrize(
    "case",
    [
        "wrong LLM key",
        "unreachable LLM",
        "missing OAuth file",
        "revoked refresh token",
        "unknown script",
        "unreachable script",
    ],
)
async def test_broken_llm_and_cleaning_are_one_clear_line_each(
    sqlite_url: str, fakes: Fakes, tmp_path: Path, case: str
) -> None:
    config = good_config(fakes, tmp_path)
    overrides: dict[str, Any] = {}
    cleaning = config.cleaning
    backend, expected = "cleaning", ""
    if case == "wrong LLM key":
        overrides["llm_api_key"] = SecretStr("sk-wrong")
        backend = "llm"
        expected = f"LLM API at {fakes.llm.base_url} rejected the API key (401): Incorrect API key provided."
    elif case == "unreachable LLM":
        overrides["llm_base_url"] = url = closed_port_url() + "/v1"
        backend = "llm"
        expected = f"cannot reach the LLM API at {url}: ConnectError: All connection attempts failed"
    elif case == "missing OAuth file":
        cleaning = cleaning.model_copy(update={"oauth_credentials_file": "none.json"})
        expected = "credential file 'none.json' does not exist in the credentials directory"
    elif case == "revoked refresh token":
        user = json.loads((fakes.credentials_dir / str(cleaning.oauth_credentials_file)).read_text())
        revoked = fakes.credentials_dir / "revoked.json"
        revoked.write_text(json.dumps(user | {"refresh_token": "1//revoked"}))
        cleaning = cleaning.model_copy(update={"oauth_credentials_file": revoked.name})
        expected = (
            "Apps Script OAuth token refresh refused: invalid_grant: Token has been expired or revoked."
        )
    elif case == "unknown script":
        cleaning = cleaning.model_copy(update={"script_id": "no-such-script"})
        expected = "Apps Script API error 404: NOT_FOUND Requested entity was not found."
    else:
        overrides["apps_script_api_url"] = closed_port_url()
        expected = "Apps Script call failed: ConnectError: All connection attempts failed"
    await save(sqlite_url, {"sinks": config.model_copy(update={"cleaning": cleaning})})

    results = await check_config(settings_for(sqlite_url, fakes, **overrides), "sinks")

    checks = by_backend(results)
    assert checks[backend].status == "failed"
    assert checks[backend].message.startswith(expected), checks[backend].message
    assert "\n" not in checks[backend].message
    assert [r.status for r in results if r.backend != backend] == ["ok", "ok"]
    assert exit_code(results) == 1


async def test_llm_off_or_unlisted_model_is_not_a_failure(
    sqlite_url: str, fakes: Fakes, tmp_path: Path
) -> None:
    config = good_config(fakes, tmp_path)
    unlisted = config.model_copy(update={"llm": LLMConfig(model="no-such-model")})
    await save(
        sqlite_url, {"off": config.model_copy(update={"llm": LLMConfig(enabled=False)}), "x": unlisted}
    )

    results = await check_config(settings_for(sqlite_url, fakes), None)
    no_key = await check_config(settings_for(sqlite_url, fakes, llm_api_key=None), "x")

    llm = [r for r in results if r.backend == "llm"]
    assert [(r.collection, r.status) for r in llm] == [("off", "skipped"), ("x", "warning")]
    assert llm[1].message == (
        f"LLM API at {fakes.llm.base_url} accepted the key but does not list model 'no-such-model' "
        "(2 listed: gpt-4o-mini, fake-model)"
    )
    assert by_backend(no_key)["llm"].status == "skipped"
    assert exit_code(results) == exit_code(no_key) == 0


async def test_unknown_collection_and_missing_database(sqlite_url: str, tmp_path: Path) -> None:
    await save(sqlite_url, {})
    [unknown] = await check_config(make_settings(sqlite_url), "nope")
    assert (unknown.backend, unknown.status, unknown.message) == (
        "collection",
        "failed",
        "collection 'nope' does not exist",
    )
    assert exit_code([unknown]) == 1
    assert await check_config(make_settings(sqlite_url), None) == []
    assert render([]) == "no collections are configured: nothing to check"

    missing = tmp_path / "none" / "wipsvc.db"
    [result] = await check_config(make_settings(f"sqlite+aiosqlite:///{missing}"), None)
    assert result.status == "failed" and result.message.startswith(f"database file {missing} does not exist")
    assert not missing.parent.exists()  # nothing was created


def test_the_command_prints_one_line_per_check_and_exits_1_on_failure(
    sqlite_url: str, fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    config = good_config(fakes, tmp_path)
    broken = config.model_copy(update={"sheet": config.sheet.model_copy(update={"spreadsheet_id": "gone"})})
    asyncio.run(save(sqlite_url, {"good": config, "broken": broken}))
    app = typer.Typer()
    app.command("check-config")(check_config_command)
    app.callback()(lambda: None)  # a group, so that the command is called by name as in `wipsvc`
    settings = settings_for(sqlite_url, fakes)
    names = (
        "database_url",
        "sheets_api_url",
        "apps_script_api_url",
        "llm_base_url",
        "llm_model",
        "credentials_dir",
    )
    env = {f"WIPSVC_{name.upper()}": str(getattr(settings, name)) for name in names}
    env["WIPSVC_LLM_API_KEY"] = fakes.llm.api_key
    monkeypatch.chdir(tmp_path)  # no .env of the developer's

    good = CliRunner().invoke(app, ["check-config", "good"], env=env)
    every = CliRunner().invoke(app, ["check-config"], env=env)

    assert good.exit_code == 0, good.output
    assert good.stdout.splitlines()[-1] == "3 checks: 3 ok, 0 warning, 0 failed"
    assert every.exit_code == 1
    assert every.stderr == f"database: {tmp_path / 'wipsvc.db'}\n"  # which database, on stderr
    lines = every.stdout.splitlines()
    assert len(lines) == 7
    assert lines[0].split()[:3] == ["broken", "sheet", "FAILED"]
    assert lines[0].endswith("Google spreadsheet gone not found")
    assert lines[-1] == "6 checks: 5 ok, 0 warning, 1 failed"

    as_json = CliRunner().invoke(app, ["check-config", "--json"], env=env)
    assert as_json.exit_code == 1
    body = json.loads(as_json.stdout)
    assert body["success"] is True and body["ok"] is False
    assert len(body["checks"]) == 6
    assert body["checks"][0] == {
        "collection": "broken",
        "backend": "sheet",
        "status": "failed",
        "message": lines[0].split("FAILED", 1)[1].strip(),
    }
