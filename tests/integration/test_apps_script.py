"""The Apps Script cleaners over real HTTP (httpx, google-auth) against fakes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.fakes.apps_script import FakeAppsScript, ScriptFailure
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.support.cleaning import failed_run
from tests.support.netguard import LoopbackOnlyTransport, StaticResolver
from wipsvc.adapters.apps_script import (
    CHECK_FUNCTION,
    AppsScriptApiCleaner,
    AppsScriptWebAppCleaner,
)
from wipsvc.adapters.builtin_cleaner import PythonCleaner
from wipsvc.adapters.factory import cleaner_for
from wipsvc.collection import CleaningConfig, CollectionConfig, SheetConfig
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError


@pytest.fixture
def script(oauth: FakeGoogleOAuth) -> Iterator[FakeAppsScript]:
    with FakeAppsScript(token_validator=oauth.is_valid) as fake:
        yield fake


@pytest.fixture
def transport() -> LoopbackOnlyTransport:
    return LoopbackOnlyTransport()


@pytest.fixture
def api_config(oauth: FakeGoogleOAuth, script: FakeAppsScript, tmp_path: Path) -> CleaningConfig:
    user_file = oauth.write_authorized_user(tmp_path / "user.json")
    return CleaningConfig(
        backend="apps_script_api", script_id=script.script_id, oauth_credentials_file=str(user_file)
    )


@pytest.fixture
async def api_cleaner(
    api_config: CleaningConfig, script: FakeAppsScript, transport: LoopbackOnlyTransport
) -> AsyncIterator[AppsScriptApiCleaner]:
    cleaner = AppsScriptApiCleaner(api_config, worksheet="Products", api_url=script.url, transport=transport)
    yield cleaner
    await cleaner.aclose()


# The fake web app answers as Google's script.google.com would: the name resolves to the fake
# (injected DNS answer) and is allowed although loopback, so the address guard lets it through.
GOOGLE_WEBAPP_HOST = "script.google.com"


def webapp_config(
    script: FakeAppsScript, secret: str | None = None, *, url: str | None = None
) -> CleaningConfig:
    google_url = script.webapp_url.replace("127.0.0.1", GOOGLE_WEBAPP_HOST)
    return CleaningConfig(
        backend="apps_script_webapp",
        webapp_url=url or google_url,
        webapp_secret=SecretStr(secret or script.secret),
    )


def webapp_cleaner(
    config: CleaningConfig,
    transport: LoopbackOnlyTransport,
    *,
    allowed: tuple[str, ...] = (GOOGLE_WEBAPP_HOST,),
) -> AppsScriptWebAppCleaner:
    return AppsScriptWebAppCleaner(
        config,
        worksheet="Products",
        transport=transport,
        resolver=StaticResolver({GOOGLE_WEBAPP_HOST: ["127.0.0.1"], "internal.example": ["127.0.0.2"]}),
        allowed_hosts=allowed,
    )


# -- Apps Script API ------------------------------------------------------------------------------------


async def test_api_runs_the_configured_function_with_sheet_row_and_sku(
    api_cleaner: AppsScriptApiCleaner, script: FakeAppsScript, oauth: FakeGoogleOAuth
) -> None:
    assert api_cleaner.transform({"title": " x "}) == {"title": " x "}

    await api_cleaner.run(row_num=7, sku="SKU-1")
    await api_cleaner.run(row_num=8, sku="SKU-2")

    assert [(c.function, c.parameters, c.dev_mode) for c in script.api_calls] == [
        ("cleanRow", ["Products", 7, "SKU-1"], False),
        ("cleanRow", ["Products", 8, "SKU-2"], False),
    ]
    # The user token came from the authorized-user file's token_uri and is reused while valid.
    assert oauth.token_requests == 1
    token = (script.api_calls[0].authorization or "").removeprefix("Bearer ")
    assert oauth.is_valid(token)
    assert oauth.issued[0].grant_type == "refresh_token"


async def test_api_execution_error_is_mapped_with_message_and_stack(
    api_cleaner: AppsScriptApiCleaner, script: FakeAppsScript
) -> None:
    script.fail_sku(
        "SKU-BAD", ScriptFailure("Exception: price column is empty", function="cleanRow", line=12)
    )

    with pytest.raises(StepError) as caught:
        await api_cleaner.run(row_num=3, sku="SKU-BAD")

    assert caught.value.message == "Apps Script error: Exception: price column is empty (cleanRow:12)"
    assert not caught.value.transient
    await api_cleaner.run(row_num=4, sku="SKU-GOOD")  # other SKUs still clean


async def test_api_script_timeout_is_transient(
    api_cleaner: AppsScriptApiCleaner, script: FakeAppsScript
) -> None:
    script.fail_next(1, ScriptFailure("Exceeded maximum execution time", error_type="ScriptError", code=10))

    with pytest.raises(StepError) as caught:
        await api_cleaner.run(row_num=3, sku="SKU-1")

    assert "Exceeded maximum execution time" in caught.value.message
    assert caught.value.transient


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_api_rate_limit_and_server_errors_are_transient(
    api_cleaner: AppsScriptApiCleaner, script: FakeAppsScript, status: int
) -> None:
    script.http_error_next(status)

    with pytest.raises(StepError) as caught:
        await api_cleaner.run(row_num=3, sku="SKU-1")

    assert caught.value.transient
    assert f"Apps Script API error {status}" in caught.value.message
    await api_cleaner.run(row_num=3, sku="SKU-1")  # the next call goes through


async def test_api_revoked_token_is_refreshed_once(
    api_cleaner: AppsScriptApiCleaner,
    script: FakeAppsScript,
    oauth: FakeGoogleOAuth,
    transport: LoopbackOnlyTransport,
) -> None:
    await api_cleaner.run(row_num=2, sku="SKU-1")
    oauth.revoke_all()

    await api_cleaner.run(row_num=3, sku="SKU-2")

    assert oauth.token_requests == 2
    sent = [r.headers["authorization"] for r in transport.requests]
    assert len(sent) == 3  # ok, 401 with the revoked token, ok with the new one
    assert sent[0] == sent[1] != sent[2]
    assert [c.parameters for c in script.api_calls] == [["Products", 2, "SKU-1"], ["Products", 3, "SKU-2"]]


async def test_api_refused_refresh_token_is_a_permanent_error(
    api_cleaner: AppsScriptApiCleaner, script: FakeAppsScript, oauth: FakeGoogleOAuth
) -> None:
    oauth.reject("invalid_grant", "Token has been expired or revoked.")

    with pytest.raises(StepError) as caught:
        await api_cleaner.run(row_num=2, sku="SKU-1")

    assert "refresh refused" in caught.value.message
    assert "Token has been expired or revoked" in caught.value.message
    assert not caught.value.transient
    assert script.api_calls == []


async def test_api_unknown_script_is_a_permanent_error_with_a_hint(
    api_config: CleaningConfig, script: FakeAppsScript, transport: LoopbackOnlyTransport
) -> None:
    config = api_config.model_copy(update={"script_id": "no-such-script"})
    cleaner = AppsScriptApiCleaner(config, worksheet="Products", api_url=script.url, transport=transport)
    error = await failed_run(cleaner)

    assert "404" in error.message
    assert "API executable" in error.message
    assert not error.transient


async def test_api_check_refreshes_and_runs_nothing(
    api_cleaner: AppsScriptApiCleaner, script: FakeAppsScript, oauth: FakeGoogleOAuth
) -> None:
    summary = await api_cleaner.check()

    assert "nothing ran" in summary
    assert oauth.token_requests == 1
    assert [c.function for c in script.api_calls] == [CHECK_FUNCTION]


async def test_api_check_reports_missing_credentials_file(
    script: FakeAppsScript, tmp_path: Path, transport: LoopbackOnlyTransport
) -> None:
    config = CleaningConfig(
        backend="apps_script_api",
        script_id=script.script_id,
        oauth_credentials_file=str(tmp_path / "nope.json"),
    )
    cleaner = AppsScriptApiCleaner(config, worksheet="Products", api_url=script.url, transport=transport)
    try:
        with pytest.raises(StepError, match=r"credentials .*nope\.json unusable"):
            await cleaner.check()
    finally:
        await cleaner.aclose()


async def test_api_timeout_is_transient(
    api_config: CleaningConfig, script: FakeAppsScript, transport: LoopbackOnlyTransport
) -> None:
    script.latency = 1.0
    cleaner = AppsScriptApiCleaner(
        api_config, worksheet="Products", api_url=script.url, transport=transport, timeout=0.2
    )
    error = await failed_run(cleaner)
    assert "timed out" in error.message
    assert error.transient


# -- web app ----------------------------------------------------------------------------------------------


async def test_webapp_ok_follows_the_redirect(
    script: FakeAppsScript, transport: LoopbackOnlyTransport
) -> None:
    cleaner = webapp_cleaner(webapp_config(script), transport)
    try:
        await cleaner.run(row_num=5, sku="SKU-1")
    finally:
        await cleaner.aclose()

    assert [c.body for c in script.webapp_calls] == [
        {"secret": script.secret, "sheet": "Products", "row": 5, "sku": "SKU-1"}
    ]
    assert script.echo_fetches == 1
    assert [(r.method, r.url.path) for r in transport.requests] == [
        ("POST", f"/macros/s/{script.deployment_id}/exec"),
        ("GET", "/macros/echo"),
    ]


async def test_webapp_not_ok_is_a_permanent_error(
    script: FakeAppsScript, transport: LoopbackOnlyTransport
) -> None:
    script.fail_sku("SKU-BAD", ScriptFailure("row 5 has no price"))
    cleaner = webapp_cleaner(webapp_config(script), transport)
    error = await failed_run(cleaner, row_num=5, sku="SKU-BAD")

    assert error.message == "Apps Script web app error: row 5 has no price"
    assert not error.transient


async def test_webapp_wrong_secret(script: FakeAppsScript, transport: LoopbackOnlyTransport) -> None:
    cleaner = webapp_cleaner(webapp_config(script, secret="not-the-secret"), transport)
    error = await failed_run(cleaner, row_num=5)
    assert "bad secret" in error.message
    assert not error.transient
    assert [c.secret_ok for c in script.webapp_calls] == [False]


async def test_webapp_server_error_is_transient(
    script: FakeAppsScript, transport: LoopbackOnlyTransport
) -> None:
    script.http_error_next(503)
    cleaner = webapp_cleaner(webapp_config(script), transport)
    error = await failed_run(cleaner, row_num=5)
    assert error.transient


async def test_webapp_check_posts_nothing(script: FakeAppsScript, transport: LoopbackOnlyTransport) -> None:
    cleaner = webapp_cleaner(webapp_config(script), transport)
    unknown = f"{script.url}/macros/s/unknown/exec".replace("127.0.0.1", GOOGLE_WEBAPP_HOST)
    wrong = webapp_cleaner(webapp_config(script, url=unknown), transport)
    try:
        assert "answered HTTP 200" in await cleaner.check()
        with pytest.raises(StepError, match="404"):
            await wrong.check()
    finally:
        await cleaner.aclose()
        await wrong.aclose()

    assert script.webapp_calls == []
    assert {r.method for r in transport.requests} == {"GET"}


async def test_factory_picks_the_backend(script: FakeAppsScript, api_config: CleaningConfig) -> None:
    settings = Settings(apps_script_api_url=script.url)
    sheet = SheetConfig(worksheet="Tab")
    api = cleaner_for(settings, CollectionConfig(sheet=sheet, cleaning=api_config))
    web = cleaner_for(settings, CollectionConfig(sheet=sheet, cleaning=webapp_config(script)))

    assert isinstance(api, AppsScriptApiCleaner)
    assert api.url == f"{script.url}/v1/scripts/{script.script_id}:run"
    assert api.worksheet == "Tab"
    assert isinstance(web, AppsScriptWebAppCleaner)
    assert isinstance(cleaner_for(settings, CollectionConfig()), PythonCleaner)
    await api.aclose()
    await web.aclose()
    with pytest.raises(ValueError, match="script_id"):
        AppsScriptApiCleaner(CleaningConfig(backend="apps_script_api"), worksheet="Tab")
