"""`wipsvc deliveries …`: the notification delivery log of a collection, and send again."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wipsvc.client.api import ApiClient
from wipsvc.client.output import JsonOption, UrlOption, emit_json, run_command

deliveries_app = typer.Typer(
    help="Notifications sent when jobs end: the log, and send again.", no_args_is_help=True
)


def deliveries_list(
    collection: str,
    job: Annotated[str | None, typer.Option("--job", help="Only this job's notifications.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, delivered or failed.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Notifications owed by the collection's jobs, newest first, with every delivery attempt."""

    async def action(api: ApiClient, console: Console) -> int:
        found = await api.deliveries(collection, job_id=job, status=status, limit=limit)
        if as_json:
            emit_json({"success": True, "deliveries": found})
            return 0
        if not found:
            console.print("no deliveries")
            return 0
        table = Table(title=f"deliveries of {collection}", title_justify="left")
        for column in ("id", "event", "job", "target", "status", "attempts", "last attempt"):
            table.add_column(column, no_wrap=column != "last attempt")
        for entry in found:
            table.add_row(
                str(entry["id"]),
                entry["event"],
                entry["job_id"][:8],
                str(entry["target_id"]),
                entry["status"],
                str(len(entry["attempts"])),
                Text(_last(entry)),
            )
        console.print(table)
        return 0

    run_command(url, action, as_json=as_json)


def deliveries_send_again(
    collection: str,
    delivery_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1)],
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Send a notification again (same message id: receivers that have it drop the repeat)."""

    async def action(api: ApiClient, console: Console) -> int:
        delivery = await api.send_again(collection, delivery_id)
        if as_json:
            emit_json({"success": True, "delivery": delivery})
        else:
            console.print(f"delivery {delivery['id']} ({delivery['event']}) will be sent again", markup=False)
        return 0

    run_command(url, action, as_json=as_json)


def _last(entry: dict[str, Any]) -> str:
    if not entry["attempts"]:
        return "-"
    last = entry["attempts"][-1]
    return f"{last['at']} {'ok' if last['ok'] else 'failed'}: {last['detail']}"


deliveries_app.command("list")(deliveries_list)
deliveries_app.command("send-again")(deliveries_send_again)
