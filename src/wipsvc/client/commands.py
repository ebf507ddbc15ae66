"""Client commands of the `wipsvc` CLI: they talk only to a running server's REST and Socket.IO.

Exit codes and the `--json` shape are the same for every command (see `wipsvc.client.output`).
Besides ``submit``, the commands that change what the server holds are in
:mod:`wipsvc.client.manage`.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wipsvc.client import manage
from wipsvc.client.api import ApiClient
from wipsvc.client.deliveries import deliveries_app
from wipsvc.client.output import (
    JsonOption,
    PollOption,
    PriorityOption,
    ReconnectOption,
    UrlOption,
    WatchFlag,
    after_start,
    emit_json,
    follow,
    run_command,
    usage_error,
)
from wipsvc.client.schedules import schedules_app
from wipsvc.client.watch import job_exit_code, outcome_line, results_table
from wipsvc.domain.statuses import JobStatus, WipStatus

jobs_app = typer.Typer(help="Start, inspect, cancel, retry and delete jobs.", no_args_is_help=True)
products_app = typer.Typer(help="List, reset and delete WIP products.", no_args_is_help=True)
collections_app = typer.Typer(help="List, delete and set up collections.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the client commands to the main CLI."""
    app.command("submit")(submit)
    app.command("watch")(watch)
    app.command("export")(export)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(products_app, name="products")
    app.add_typer(collections_app, name="collections")
    manage.register(jobs_app, products_app, collections_app)
    app.add_typer(deliveries_app, name="deliveries")
    app.add_typer(schedules_app, name="schedules")


def read_products_csv(path: Path) -> list[tuple[str, str]]:
    """(sku, url) rows of a CSV; the header row is optional (without one: sku, then url)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            rows = [(n, row) for n, row in enumerate(csv.reader(file), 1) if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise typer.BadParameter(f"{path.name} is not a UTF-8 CSV file: {error}") from None
    if not rows:
        raise typer.BadParameter(f"{path.name} holds no products")
    sku_col, url_col = 0, 1
    header = [cell.strip().lower() for cell in rows[0][1]]
    if "sku" in header and "url" in header:
        sku_col, url_col = header.index("sku"), header.index("url")
        rows = rows[1:]
    products = []
    for number, row in rows:
        if len(row) <= max(sku_col, url_col) or not row[sku_col].strip() or not row[url_col].strip():
            raise typer.BadParameter(f"{path.name}, line {number}: expected a SKU and a URL")
        products.append((row[sku_col].strip(), row[url_col].strip()))
    return products


def submit(
    collection: Annotated[str, typer.Argument(help="Collection to add the products to.")],
    products_csv: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV of sku,url (header optional).")
    ],
    priority: PriorityOption = None,
    watch: WatchFlag = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    reconnect_timeout: ReconnectOption = 300.0,
    poll_interval: PollOption = 5.0,
) -> None:
    """Create the CSV's products in COLLECTION and start a job processing them."""
    try:
        products = read_products_csv(products_csv)
    except typer.BadParameter as error:
        raise usage_error(str(error), as_json=as_json) from None

    async def action(api: ApiClient, console: Console) -> int:
        wip_ids = await api.create_products(collection, products)
        started = await api.start_job(collection, wip_ids, priority=priority.value if priority else None)
        console.print(f"Created {len(wip_ids)} products in {collection!r}; started job:")
        if not as_json:
            console.print(started.job_id, markup=False)
        created = {"collection_name": collection, "wip_ids": wip_ids}
        return await after_start(
            api, console, collection, started, watch, as_json, reconnect_timeout, poll_interval, created
        )

    run_command(url, action, as_json=as_json)


def watch(
    job_id: Annotated[str, typer.Argument(help="The job to follow.")],
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="The job's collection (else looked up).")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    reconnect_timeout: ReconnectOption = 300.0,
    poll_interval: PollOption = 5.0,
) -> None:
    """Follow a job live until it ends; exit 0 if every product succeeded, else 1."""

    async def action(api: ApiClient, console: Console) -> int:
        name = collection or (await api.find_job(job_id)).collection_name
        job = await follow(api, console, name, job_id, reconnect_timeout, poll_interval)
        if as_json:
            emit_json({"success": True, "job": job.model_dump(mode="json")})
        return job_exit_code(job)

    run_command(url, action, as_json=as_json)


@jobs_app.command("list")
def jobs_list(
    collection: Annotated[str | None, typer.Argument(help="Only this collection's jobs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Most recent jobs to show.")] = 10,
    offset: Annotated[int, typer.Option(min=0, help="Jobs to skip (paging).")] = 0,
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Recent jobs of every collection (or of COLLECTION), newest first."""

    async def action(api: ApiClient, console: Console) -> int:
        page = await api.all_jobs(
            collection=collection, status=status.value if status else None, limit=limit, offset=offset
        )
        jobs = page.jobs
        if as_json:
            emit_json(page.model_dump(mode="json"))
            return 0
        # Light borders: a job id must fit whole on an 80-column terminal, next to the counts.
        title = f"jobs of {collection}" if collection else "jobs"
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("job id", no_wrap=True, min_width=36)
        table.add_column("status", no_wrap=True, min_width=9)
        table.add_column("done", justify="right", no_wrap=True)
        table.add_column("failed", justify="right", no_wrap=True)
        table.add_column("created", justify="right", no_wrap=True)
        if not collection:
            table.add_column("collection", no_wrap=True)
        for job in jobs:
            failed = Text(str(job.failed_products), style="red" if job.failed_products else "")
            done = f"{job.processed_products}/{job.total_products}"
            cells = [job.job_id, job.status.value, done, failed, _ago(job.created_at)]
            table.add_row(*cells, *([] if collection else [Text(job.collection_name)]))
        console.print(table if jobs else (f"no jobs in {collection!r}" if collection else "no jobs"))
        if page.total > offset + len(jobs):
            console.print(f"showing {offset + 1}-{offset + len(jobs)} of {page.total}")
        return 0

    run_command(url, action, as_json=as_json)


@jobs_app.command("show")
def jobs_show(collection: str, job_id: str, as_json: JsonOption = False, url: UrlOption = None) -> None:
    """One job: status, counters and per-product results."""

    async def action(api: ApiClient, console: Console) -> int:
        job = await api.get_job(collection, job_id)
        if as_json:
            emit_json({"success": True, "job": job.model_dump(mode="json")})
            return 0
        console.print(f"job {job.job_id}: {job.status.value}", markup=False)
        console.print(
            f"{job.processed_products}/{job.total_products} processed, {job.successful_products} succeeded, "
            f"{job.failed_products} failed; priority {job.priority.value}"
            + (f"; retry of {job.retry_of}" if job.retry_of else ""),
            markup=False,
        )
        if job.results:
            console.print(results_table(job, max_rows=None))
        if job.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            console.print(outcome_line(job))
        return 0

    run_command(url, action, as_json=as_json)


@products_app.command("list")
def products_list(
    collection: str,
    status: Annotated[WipStatus | None, typer.Option(help="Only products in this status.")] = None,
    search: Annotated[str | None, typer.Option(help="Part of the SKU or URL.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """WIP products of COLLECTION, oldest first."""

    async def action(api: ApiClient, console: Console) -> int:
        page = await api.list_products(
            collection, status=status.value if status else None, search=search, limit=limit, offset=offset
        )
        if as_json:
            emit_json(page.model_dump(mode="json"))
            return 0
        table = Table(title=f"products of {collection}", title_justify="left")
        for name in ("id", "sku", "status", "row"):
            table.add_column(name, no_wrap=True)
        table.add_column("error", overflow="fold")
        for product in page.products:
            table.add_row(
                str(product.wip_id),
                Text(product.sku),
                product.status.value,
                "-" if product.row_num is None else str(product.row_num),
                Text(product.error or ""),
            )
        if page.products:
            console.print(table)
        shown = f"{offset + 1}-{offset + len(page.products)}" if page.products else "none"
        console.print(f"showing {shown} of {page.total}")
        return 0

    run_command(url, action, as_json=as_json)


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


def export(
    collection: str,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="csv: the sheet; json: every product.")
    ] = ExportFormat.CSV,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", dir_okay=False, help="File to write (default stdout).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --output: print what was written as one JSON object.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Export COLLECTION: its sheet as CSV, or all its products as JSON."""
    if as_json and output is None:
        raise usage_error("--json needs --output: without it, stdout holds the export itself", as_json=True)

    async def action(api: ApiClient, console: Console) -> int:
        count: int
        if fmt is ExportFormat.CSV:
            text = await api.sheet_csv(collection)
            # Rows, not lines: a cell may hold line breaks. The header row is not counted.
            count = max(0, sum(1 for _ in csv.reader(io.StringIO(text))) - 1)
            what = f"{count} rows"
        else:
            products = await api.all_products(collection)
            text = (
                json.dumps([p.model_dump(mode="json") for p in products], indent=2, ensure_ascii=False) + "\n"
            )
            count = len(products)
            what = f"{count} products"
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            Console(stderr=True).print(f"wrote {what} to {output}", markup=False, soft_wrap=True)
            if as_json:
                kind = "rows" if fmt is ExportFormat.CSV else "products"
                emit_json({"success": True, "format": fmt.value, kind: count, "output": str(output)})
        return 0

    run_command(url, action, as_json=as_json)


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
