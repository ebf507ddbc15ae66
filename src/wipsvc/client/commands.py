"""Client commands of the `wipsvc` CLI: they talk only to a running server's REST and Socket.IO.

Exit codes: 0 success; 1 a followed job ended with a failed product, or failed, or was
cancelled; 2 a usage error, an error answer from the server, or no server to talk to.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wipsvc.api.schemas import Job
from wipsvc.client.api import DEFAULT_URL, URL_ENV, ApiClient, ClientConfig, ClientError
from wipsvc.client.watch import WatchOptions, job_exit_code, outcome_line, results_table, watch_job
from wipsvc.domain.statuses import JobStatus, WipStatus

EXIT_USAGE = 2

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar=URL_ENV, help=f"Server base URL (default {DEFAULT_URL})."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
WatchFlag = Annotated[bool, typer.Option("--watch", "-w", help="Follow the job until it ends.")]
ReconnectOption = Annotated[
    float,
    typer.Option(help="Seconds to keep reconnecting while the server is unreachable.", min=0),
]
PollOption = Annotated[
    float, typer.Option(help="Poll REST when no live event arrived for this many seconds.", min=0.1)
]

jobs_app = typer.Typer(help="Inspect, cancel and retry jobs.", no_args_is_help=True)
products_app = typer.Typer(help="Inspect WIP products.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the client commands to the main CLI."""
    app.command("submit")(submit)
    app.command("watch")(watch)
    app.command("export")(export)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(products_app, name="products")


def _run(url: str | None, action: Callable[[ApiClient, Console], Awaitable[int]]) -> None:
    """Run one command against the server and exit with its code; client errors exit 2."""
    console, errors = Console(highlight=False), Console(stderr=True, highlight=False)

    async def main() -> int:
        async with ApiClient(ClientConfig.from_env(url)) as api:
            return await action(api, console)

    try:
        code = asyncio.run(main())
    except ClientError as error:
        errors.print(Text("error: ", "bold red") + Text(str(error)), soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        errors.print("interrupted (a job already started goes on on the server)")
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def _follow(
    api: ApiClient, console: Console, collection: str, job_id: str, reconnect: float, poll: float
) -> Awaitable[Job]:
    options = WatchOptions(reconnect_timeout=reconnect, poll_interval=poll)
    return watch_job(api, collection, job_id, console=console, options=options)


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
    watch: WatchFlag = False,
    url: UrlOption = None,
    reconnect_timeout: ReconnectOption = 300.0,
    poll_interval: PollOption = 5.0,
) -> None:
    """Create the CSV's products in COLLECTION and start a job processing them."""
    products = read_products_csv(products_csv)

    async def action(api: ApiClient, console: Console) -> int:
        wip_ids = await api.create_products(collection, products)
        started = await api.start_job(collection, wip_ids)
        console.print(f"Created {len(wip_ids)} products in {collection!r}; started job:")
        console.print(started.job_id, markup=False)
        if not watch:
            console.print(f"Follow it: wipsvc watch {started.job_id} --collection {collection}", markup=False)
            return 0
        job = await _follow(api, console, collection, started.job_id, reconnect_timeout, poll_interval)
        return job_exit_code(job)

    _run(url, action)


def watch(
    job_id: Annotated[str, typer.Argument(help="The job to follow.")],
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="The job's collection (else looked up).")
    ] = None,
    url: UrlOption = None,
    reconnect_timeout: ReconnectOption = 300.0,
    poll_interval: PollOption = 5.0,
) -> None:
    """Follow a job live until it ends; exit 0 if every product succeeded, else 1."""

    async def action(api: ApiClient, console: Console) -> int:
        name = collection or (await api.find_job(job_id)).collection_name
        job = await _follow(api, console, name, job_id, reconnect_timeout, poll_interval)
        return job_exit_code(job)

    _run(url, action)


@jobs_app.command("list")
def jobs_list(
    collection: str,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Most recent jobs to show.")] = 10,
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Recent jobs of COLLECTION, newest first."""

    async def action(api: ApiClient, console: Console) -> int:
        jobs = await api.list_jobs(collection, limit=limit, status=status.value if status else None)
        if as_json:
            _print_json([job.model_dump(mode="json") for job in jobs])
            return 0
        # Light borders: a job id must fit whole on an 80-column terminal, next to the counts.
        table = Table(
            title=f"jobs of {collection}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
        )
        table.add_column("job id", no_wrap=True, min_width=36)
        table.add_column("status", no_wrap=True, min_width=9)
        table.add_column("done", justify="right", no_wrap=True)
        table.add_column("failed", justify="right", no_wrap=True)
        table.add_column("created", justify="right", no_wrap=True)
        for job in jobs:
            failed = Text(str(job.failed_products), style="red" if job.failed_products else "")
            done = f"{job.processed_products}/{job.total_products}"
            table.add_row(job.job_id, job.status.value, done, failed, _ago(job.created_at))
        console.print(table if jobs else f"no jobs in {collection!r}")
        return 0

    _run(url, action)


@jobs_app.command("show")
def jobs_show(collection: str, job_id: str, as_json: JsonOption = False, url: UrlOption = None) -> None:
    """One job: status, counters and per-product results."""

    async def action(api: ApiClient, console: Console) -> int:
        job = await api.get_job(collection, job_id)
        if as_json:
            _print_json(job.model_dump(mode="json"))
            return 0
        console.print(f"job {job.job_id}: {job.status.value}", markup=False)
        console.print(
            f"{job.processed_products}/{job.total_products} processed, {job.successful_products} succeeded, "
            f"{job.failed_products} failed" + (f"; retry of {job.retry_of}" if job.retry_of else ""),
            markup=False,
        )
        if job.results:
            console.print(results_table(job, max_rows=None))
        if job.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            console.print(outcome_line(job))
        return 0

    _run(url, action)


@jobs_app.command("cancel")
def jobs_cancel(collection: str, job_id: str, url: UrlOption = None) -> None:
    """Cancel a job (products already in flight finish)."""

    async def action(api: ApiClient, console: Console) -> int:
        answer = await api.cancel_job(collection, job_id)
        console.print(f"{answer.message} Job {job_id} is {answer.job.status.value}.", markup=False)
        return 0

    _run(url, action)


@jobs_app.command("retry")
def jobs_retry(
    collection: str,
    job_id: str,
    watch: WatchFlag = False,
    url: UrlOption = None,
    reconnect_timeout: ReconnectOption = 300.0,
    poll_interval: PollOption = 5.0,
) -> None:
    """Re-run the failed products of a finished job as a new job."""

    async def action(api: ApiClient, console: Console) -> int:
        started = await api.retry_job(collection, job_id)
        console.print(f"Retrying {started.total_products} failed products of {job_id}; new job:")
        console.print(started.job_id, markup=False)
        if not watch:
            return 0
        job = await _follow(api, console, collection, started.job_id, reconnect_timeout, poll_interval)
        return job_exit_code(job)

    _run(url, action)


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
            _print_json(page.model_dump(mode="json"))
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

    _run(url, action)


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
    url: UrlOption = None,
) -> None:
    """Export COLLECTION: its sheet as CSV, or all its products as JSON."""

    async def action(api: ApiClient, console: Console) -> int:
        if fmt is ExportFormat.CSV:
            text = await api.sheet_csv(collection)
            what = f"{max(0, text.count(chr(10)) - 1)} rows"
        else:
            products = await api.all_products(collection)
            text = (
                json.dumps([p.model_dump(mode="json") for p in products], indent=2, ensure_ascii=False) + "\n"
            )
            what = f"{len(products)} products"
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            Console(stderr=True).print(f"wrote {what} to {output}", markup=False)
        return 0

    _run(url, action)


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
