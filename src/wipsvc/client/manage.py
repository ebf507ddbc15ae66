"""Client commands that change what the server holds: start jobs for given products, cancel a
job, run a job's failed or (after a cancel) skipped products again, reset and delete products,
delete jobs and collections."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wipsvc.api.schemas import DeleteResponse
from wipsvc.client.api import ApiClient
from wipsvc.client.output import (
    JsonOption,
    PollOption,
    PriorityOption,
    ReconnectOption,
    UrlOption,
    WatchFlag,
    emit_json,
    run_command,
    start_and_follow,
    usage_error,
)
from wipsvc.domain.priority import Priority

WipIds = Annotated[list[int], typer.Argument(help="WIP product ids.", min=1, max=2**31 - 1)]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def jobs_start(
    collection: str,
    wip_ids: WipIds,
    priority: PriorityOption = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Run the job at this time (ISO 8601 with a UTC offset, e.g. 2026-12-01T06:00:00+01:00): "
            "it is `scheduled` until then.",
        ),
    ] = None,
    watch: WatchFlag = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    reconnect_timeout: ReconnectOption = 300.0,
    poll_interval: PollOption = 5.0,
) -> None:
    """Start a job for products of COLLECTION already created, by id (with --at, at that time)."""
    if at is not None:
        at = _run_at(at, as_json)
    start_and_follow(
        url,
        collection,
        lambda api: api.start_job(
            collection, wip_ids, priority=priority.value if priority else None, run_at=at
        ),
        lambda started: (
            f"Scheduled a job of {started.total_products} products in {collection!r} for {at}:"
            if at is not None
            else f"Started a job of {started.total_products} products in {collection!r}:"
        ),
        watch=watch,
        as_json=as_json,
        reconnect=reconnect_timeout,
        poll=poll_interval,
    )


def _run_at(text: str, as_json: bool) -> str:
    """The --at time, checked here so that a time without an offset is a usage error (exit 2)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise usage_error(f"--at {text!r} is not an ISO 8601 time", as_json=as_json) from None
    if moment.tzinfo is None:
        raise usage_error(f"--at {text!r} needs a UTC offset, e.g. {text}+00:00", as_json=as_json)
    return moment.isoformat()


def jobs_resume(
    collection: str,
    job_id: str,
    watch: WatchFlag = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    reconnect_timeout: ReconnectOption = 300.0,
    poll_interval: PollOption = 5.0,
) -> None:
    """Run the products a cancelled job skipped (never started) as a new job."""
    start_and_follow(
        url,
        collection,
        lambda api: api.retry_job(collection, job_id, products="skipped"),
        lambda started: f"Running the {started.total_products} skipped products of {job_id}; new job:",
        watch=watch,
        as_json=as_json,
        reconnect=reconnect_timeout,
        poll=poll_interval,
    )


def jobs_priority(
    collection: str,
    job_id: str,
    priority: Annotated[Priority, typer.Argument(help="urgent, normal or low.")],
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Change the priority of a job that is still scheduled or queued."""

    async def action(api: ApiClient, console: Console) -> int:
        job = await api.change_priority(collection, job_id, priority.value)
        if as_json:
            emit_json({"success": True, "job": job.model_dump(mode="json")})
        else:
            console.print(f"Job {job_id} is {job.status.value}, priority {job.priority.value}.", markup=False)
        return 0

    run_command(url, action, as_json=as_json)


def jobs_cancel(collection: str, job_id: str, as_json: JsonOption = False, url: UrlOption = None) -> None:
    """Cancel a job (products already in flight finish)."""

    async def action(api: ApiClient, console: Console) -> int:
        answer = await api.cancel_job(collection, job_id)
        if as_json:
            emit_json(answer.model_dump(mode="json"))
        else:
            console.print(f"{answer.message} Job {job_id} is {answer.job.status.value}.", markup=False)
        return 0

    run_command(url, action, as_json=as_json)


def jobs_retry(
    collection: str,
    job_id: str,
    watch: WatchFlag = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    reconnect_timeout: ReconnectOption = 300.0,
    poll_interval: PollOption = 5.0,
) -> None:
    """Re-run the failed products of a finished job as a new job."""
    start_and_follow(
        url,
        collection,
        lambda api: api.retry_job(collection, job_id),
        lambda started: f"Retrying {started.total_products} failed products of {job_id}; new job:",
        watch=watch,
        as_json=as_json,
        reconnect=reconnect_timeout,
        poll=poll_interval,
    )


def jobs_delete(collection: str, job_id: str, as_json: JsonOption = False, url: UrlOption = None) -> None:
    """Delete a finished job with its history (its products and sheet rows stay)."""

    async def action(api: ApiClient, console: Console) -> int:
        _report(console, await api.delete_job(collection, job_id), as_json)
        return 0

    run_command(url, action, as_json=as_json)


def products_reset(
    collection: str, wip_ids: WipIds, as_json: JsonOption = False, url: UrlOption = None
) -> None:
    """Put stuck or failed products back to pending."""

    async def action(api: ApiClient, console: Console) -> int:
        products = [await api.reset_product(collection, wip_id) for wip_id in wip_ids]
        if as_json:
            emit_json({"success": True, "products": [p.model_dump(mode="json") for p in products]})
        for product in products:
            console.print(
                f"WIP product {product.wip_id} ({product.sku}) is {product.status.value}.", markup=False
            )
        return 0

    run_command(url, action, as_json=as_json)


def products_delete(
    collection: str, wip_ids: WipIds, as_json: JsonOption = False, url: UrlOption = None
) -> None:
    """Delete products no queued or running job holds (their sheet rows stay)."""

    async def action(api: ApiClient, console: Console) -> int:
        deleted = 0
        for wip_id in wip_ids:
            answer = await api.delete_product(collection, wip_id)
            deleted += answer.deleted.products
            console.print(answer.message, markup=False)
        if as_json:
            emit_json({"success": True, "deleted": {"products": deleted, "jobs": 0, "sheet_rows": 0}})
        return 0

    run_command(url, action, as_json=as_json)


def collections_list(as_json: JsonOption = False, url: UrlOption = None) -> None:
    """Collections the API key may use, with their products by status."""

    async def action(api: ApiClient, console: Console) -> int:
        answer = await api.collections()
        if as_json:
            emit_json(answer.model_dump(mode="json"))
            return 0
        if not answer.collections:
            console.print("no collections")
            return 0
        table = Table(title="collections", title_justify="left")
        table.add_column("name", no_wrap=True)
        table.add_column("products", justify="right")
        table.add_column("by status")
        table.add_column("sheet", no_wrap=True)
        for collection in answer.collections:
            counts = collection.product_counts
            by_status = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
            table.add_row(
                Text(collection.name), str(sum(counts.values())), by_status, collection.config.sheet.backend
            )
        console.print(table)
        return 0

    run_command(url, action, as_json=as_json)


def collections_delete(
    name: str, yes: YesOption = False, as_json: JsonOption = False, url: UrlOption = None
) -> None:
    """Delete a collection with its products, jobs and built-in worksheet rows (never a Google
    sheet). Refused while one of its jobs is queued or running."""
    if not yes:
        if not sys.stdin.isatty():
            raise usage_error(
                f"deleting collection '{name}' needs --yes when not run at a terminal", as_json=as_json
            )
        typer.confirm(f"Delete collection '{name}' with all its products and jobs?", abort=True)

    async def action(api: ApiClient, console: Console) -> int:
        _report(console, await api.delete_collection(name), as_json)
        return 0

    run_command(url, action, as_json=as_json)


def _report(console: Console, answer: DeleteResponse, as_json: bool) -> None:
    if as_json:
        emit_json(answer.model_dump(mode="json"))
        return
    counts = answer.deleted
    console.print(
        f"{answer.message} ({counts.products} products, {counts.jobs} jobs, {counts.sheet_rows} sheet rows)",
        markup=False,
    )


def register(jobs_app: typer.Typer, products_app: typer.Typer, collections_app: typer.Typer) -> None:
    jobs_app.command("cancel")(jobs_cancel)
    jobs_app.command("retry")(jobs_retry)
    jobs_app.command("start")(jobs_start)
    jobs_app.command("resume")(jobs_resume)
    jobs_app.command("priority")(jobs_priority)
    jobs_app.command("delete")(jobs_delete)
    products_app.command("reset")(products_reset)
    products_app.command("delete")(products_delete)
    collections_app.command("list")(collections_list)
    collections_app.command("delete")(collections_delete)
