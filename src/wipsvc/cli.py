"""The `wipsvc` command line."""

from __future__ import annotations

import asyncio
import gc
import logging

import typer

from wipsvc.check_config import check_config_command
from wipsvc.client.commands import register as register_client_commands
from wipsvc.config import Settings
from wipsvc.keys_cli import keys_app

app = typer.Typer(help="wipsvc: background processing of WIP catalogue products.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default WIPSVC_HOST)."),
    port: int | None = typer.Option(None, help="Port (default WIPSVC_PORT)."),
) -> None:
    """Run the HTTP + Socket.IO server."""
    import uvicorn
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from wipsvc.app import create_app
    from wipsvc.auth import InsecureBind, check_bind
    from wipsvc.server_options import uvicorn_options
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
    _logging(settings)
    app = create_app(settings)
    _tune_gc_for_serving()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        **uvicorn_options(settings),
    )


def _tune_gc_for_serving() -> None:
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
def db_upgrade() -> None:
    """Upgrade the schema to the newest migration (the server also does this on start)."""
    from wipsvc.store.engine import create_engine, upgrade_schema

    settings = Settings()

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await upgrade_schema(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("schema is up to date")


@app.command()
def demo(
    products: int = typer.Option(0, help="Also add this many generated copies of the sample pages."),
) -> None:
    """Run a job end to end on embedded defaults against a built-in sample shop."""
    from wipsvc.demo.run import run_demo

    raise typer.Exit(asyncio.run(run_demo(extra_products=products)))


# submit, watch, export, jobs …, products …: clients of a running server (after the server's own).
register_client_commands(app)
app.command("check-config")(check_config_command)


def main() -> None:
    app()
