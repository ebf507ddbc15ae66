"""The `wipsvc` command line."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from wipsvc.check_config import check_config_command
from wipsvc.client.commands import collections_app
from wipsvc.client.commands import register as register_client_commands
from wipsvc.collections_cli import set_collection
from wipsvc.keys_cli import keys_app

# What a command needs beyond typer is imported in its function: the client commands and `--help`
# start without the server's libraries, or even the settings (tests/unit/test_cli_imports.py).
if TYPE_CHECKING:
    from wipsvc.config import Settings

ALLOWED_HOSTS_ENV = "WIPSVC_SCRAPE_ALLOWED_HOSTS"

app = typer.Typer(help="wipsvc: background processing of WIP catalogue products.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"wipsvc {package_version('wipsvc')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """wipsvc: background processing of WIP catalogue products.

    Exit codes: 0 done; 1 a job (or check) had failures; 2 a usage error (bad option, file or
    setting); 3 the server refused the request or could not be reached."""


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default WIPSVC_HOST)."),
    port: int | None = typer.Option(None, help="Port (default WIPSVC_PORT)."),
) -> None:
    """Run the HTTP + Socket.IO server."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from wipsvc.auth import InsecureBind, check_bind
    from wipsvc.config import Settings
    from wipsvc.logs import configure_logging
    from wipsvc.serving import build_server, run
    from wipsvc.startup import (
        EXIT_BAD_SETTINGS,
        EXIT_DATABASE_UNUSABLE,
        DatabaseUnusable,
        check_database,
        settings_problem,
    )

    overrides = {key: value for key, value in {"host": host, "port": port}.items() if value is not None}
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except (ValidationError, SettingsError) as error:
        typer.echo(f"error: {settings_problem(error)}", err=True)
        raise typer.Exit(EXIT_BAD_SETTINGS) from None
    try:  # before uvicorn binds anything (the app's start-up checks again)
        asyncio.run(check_database(settings.database_url))
        asyncio.run(check_bind(settings))
    except DatabaseUnusable as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_DATABASE_UNUSABLE) from None
    except InsecureBind as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings)  # after the checks: a start-up failure prints one line only
    # Through the log, so that with WIPSVC_LOG_FORMAT=json every line the server prints is JSON.
    serve_log = logging.getLogger("wipsvc.serve")
    for line in settings.database_notice():
        serve_log.log(logging.WARNING if line.startswith("warning:") else logging.INFO, "%s", line)
    server = build_server(settings)
    tune_gc_for_serving()
    run(server)


def _announce_database(settings: Settings) -> None:
    for line in settings.database_notice():
        typer.echo(line, err=True)


def tune_gc_for_serving() -> None:
    """Keep full garbage collections, which pause the event loop, out of a busy server's way.

    Everything imported and built so far lives as long as the process: frozen, it is no longer
    walked by full collections. And a young generation of 10,000 objects instead of 700 means far
    fewer young collections, so far fewer short-lived objects (packets queued for 500 sockets, a
    request's coroutines) happen to be alive at one and get promoted; it is those promotions that
    trigger full collections, 40-75 ms each with 500 clients connected. Measured with
    bench/load.py: event p99 from ~100 ms to ~35 ms, REST p99 from ~80 ms to ~30 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


@db_app.command("upgrade")
def db_upgrade(
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Upgrade the schema to the newest migration (the server also does this on start)."""
    from wipsvc.config import Settings
    from wipsvc.startup import require_database

    settings = Settings()
    _announce_database(settings)
    require_database(settings.database_url, as_json=as_json)  # opening it brings the schema up to date
    if as_json:
        typer.echo(json.dumps({"success": True, "message": "schema is up to date"}, indent=2))
        return
    typer.echo("schema is up to date")


@app.command()
def demo(
    products: int = typer.Option(0, help="Also add this many generated copies of the sample pages."),
) -> None:
    """Run a job end to end on embedded defaults against a built-in sample shop."""
    from wipsvc.config import Settings
    from wipsvc.demo.run import run_demo
    from wipsvc.startup import require_database

    require_database(Settings().database_url)  # one line, not the server's traceback

    raise typer.Exit(asyncio.run(run_demo(extra_products=products)))


SAMPLE_SHOP_PORT = 8766


@app.command("serve-demo")
def serve_demo(
    shop_port: int = typer.Option(SAMPLE_SHOP_PORT, min=1, max=65535, help="Port of the sample shop."),
) -> None:
    """`wipsvc serve` with the demo's sample shop kept running on 127.0.0.1, to try the API on."""
    from wipsvc.demo.shop import DEMO_PAGES, SampleShop

    # The shop is on loopback, which the scraper refuses unless the operator allows it.
    allowed = [os.environ.get(ALLOWED_HOSTS_ENV, ""), "127.0.0.1"]
    os.environ[ALLOWED_HOSTS_ENV] = ",".join(host for host in allowed if host)
    shop = SampleShop(port=shop_port)
    try:
        shop.start()
    except OSError as error:
        message = f"cannot serve the sample shop on 127.0.0.1:{shop_port}: {error.strerror}"
        typer.echo(f"error: {message} (choose another port with --shop-port)", err=True)
        raise typer.Exit(2) from None
    try:
        typer.echo(f"sample shop: {shop.base_url}/ (e.g. {shop.url_for(DEMO_PAGES[0])})", err=True)
        typer.echo(f"{ALLOWED_HOSTS_ENV}={os.environ[ALLOWED_HOSTS_ENV]}", err=True)
        serve(host=None, port=None)
    finally:
        shop.stop()


# submit, watch, export, jobs …, products …: clients of a running server (after the server's own).
register_client_commands(app)
collections_app.command("set")(set_collection)
app.command("check-config")(check_config_command)


def main() -> None:
    try:
        app()
    except ValidationError as error:  # a WIPSVC_* setting (or .env line) that does not parse
        typer.echo(f"error: invalid settings: {settings_problems(error)}", err=True)
        raise SystemExit(2) from None
    except Exception as error:
        # Imported only now: it was loaded already if the command read the settings.
        from pydantic_settings import SettingsError

        if not isinstance(error, SettingsError):
            raise
        typer.echo(f"error: invalid settings: {error}", err=True)
        raise SystemExit(2) from None


def settings_problems(error: ValidationError) -> str:
    """One line naming each bad setting by its variable, never echoing the value (it may be secret)."""
    problems = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        name = f"WIPSVC_{field.upper()}" if field else "settings"
        problems.append(f"{name}: {problem['msg']}")
    return "; ".join(problems)
