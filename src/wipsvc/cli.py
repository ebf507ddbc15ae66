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

    from wipsvc.app import create_app
    from wipsvc.auth import InsecureBind, check_bind

    overrides = {key: value for key, value in {"host": host, "port": port}.items() if value is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    _logging(settings)
    try:  # before uvicorn binds anything (the app's start-up checks again)
        asyncio.run(check_bind(settings))
    except InsecureBind as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    app = create_app(settings)
    # Everything imported and built so far lives as long as the process. Frozen, it is no longer
    # walked by full collections, which otherwise pause the event loop for 100-200 ms at a time
    # on this heap (measured with bench/load.py: the cause of the REST and event p99 tails).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
    )


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
