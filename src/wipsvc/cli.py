"""The `wipsvc` command line."""

from __future__ import annotations

import asyncio
import logging

import typer

from wipsvc.config import Settings

app = typer.Typer(help="wipsvc: background processing of WIP catalogue products.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


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

    overrides = {key: value for key, value in {"host": host, "port": port}.items() if value is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    _logging(settings)
    uvicorn.run(
        create_app(settings),
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


def main() -> None:
    app()
