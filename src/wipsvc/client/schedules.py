"""`wipsvc schedules …`: a collection's recurring schedules: list, create, pause, resume, delete."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from wipsvc.client.api import ApiClient
from wipsvc.client.output import JsonOption, UrlOption, emit_json, run_command

schedules_app = typer.Typer(
    help="Recurring schedules: jobs made at the times a cron gives.", no_args_is_help=True
)
ScheduleId = Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="The schedule's id.")]


def schedules_list(collection: str, as_json: JsonOption = False, url: UrlOption = None) -> None:
    """The collection's schedules, oldest first, with their next due time and last fire."""

    async def action(api: ApiClient, console: Console) -> int:
        found = await api.schedules(collection)
        if as_json:
            emit_json({"success": True, "schedules": found, "count": len(found)})
            return 0
        if not found:
            console.print("no schedules")
            return 0
        table = Table(title=f"schedules of {collection}", title_justify="left")
        for column in ("id", "cron", "time zone", "statuses", "next", "last fire"):
            table.add_column(column, no_wrap=column == "id", overflow="fold")
        for schedule in found:
            fires = await api.schedule_fires(collection, schedule["id"], limit=1)
            table.add_row(
                str(schedule["id"]),
                schedule["cron"],
                schedule["timezone"],
                ",".join(schedule["selector"]["statuses"]),
                "paused" if schedule["paused"] else _short(schedule["next_fire_at"]),
                _fire(fires[0]) if fires else "-",
            )
        console.print(table, markup=False)
        return 0

    run_command(url, action, as_json=as_json)


def schedules_create(
    collection: str,
    cron: Annotated[
        str, typer.Argument(help="5 fields (minute hour day month weekday), or 6 with seconds last.")
    ],
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="IANA time zone of the cron.")] = "UTC",
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="WIP status each fire takes (repeat for several; default pending)."),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Create a schedule: at each due time, the products in the given statuses that no job holds
    are processed, oldest first, in jobs of at most WIPSVC_MAX_BATCH products."""

    async def action(api: ApiClient, console: Console) -> int:
        body: dict[str, Any] = {"cron": cron, "timezone": timezone}
        if status:
            body["selector"] = {"statuses": status}
        schedule = await api.create_schedule(collection, body)
        if as_json:
            emit_json({"success": True, "schedule": schedule})
        else:
            console.print(
                f"schedule {schedule['id']} created; first fire at {schedule['next_fire_at']}", markup=False
            )
        return 0

    run_command(url, action, as_json=as_json)


def _change(collection: str, schedule_id: int, verb: str, as_json: bool, url: str | None) -> None:
    async def action(api: ApiClient, console: Console) -> int:
        schedule = await api.schedule_action(collection, schedule_id, verb)
        if as_json:
            emit_json({"success": True, "schedule": schedule})
        elif schedule["paused"]:
            console.print(f"schedule {schedule_id} paused", markup=False)
        else:
            console.print(
                f"schedule {schedule_id} resumed; next fire at {schedule['next_fire_at']}", markup=False
            )
        return 0

    run_command(url, action, as_json=as_json)


def schedules_pause(
    collection: str, schedule_id: ScheduleId, as_json: JsonOption = False, url: UrlOption = None
) -> None:
    """Stop a schedule firing (the jobs it made go on)."""
    _change(collection, schedule_id, "pause", as_json, url)


def schedules_resume(
    collection: str, schedule_id: ScheduleId, as_json: JsonOption = False, url: UrlOption = None
) -> None:
    """Fire again from the next due time after now."""
    _change(collection, schedule_id, "resume", as_json, url)


def schedules_delete(
    collection: str, schedule_id: ScheduleId, as_json: JsonOption = False, url: UrlOption = None
) -> None:
    """Delete a schedule and its fires log (the jobs it made stay)."""

    async def action(api: ApiClient, console: Console) -> int:
        answer = await api.delete_schedule(collection, schedule_id)
        if as_json:
            emit_json(answer)
        else:
            console.print(answer["message"], markup=False)
        return 0

    run_command(url, action, as_json=as_json)


def _short(moment: str) -> str:
    """``2026-12-01T05:00:00Z`` as ``2026-12-01 05:00:00Z``: room for the table on 80 columns."""
    return moment.replace("T", " ")


def _fire(fire: dict[str, Any]) -> str:
    jobs = f", {len(fire['job_ids'])} job(s)" if fire["job_ids"] else ""
    return f"{_short(fire['due_at'])} {fire['outcome']}{jobs}"


schedules_app.command("list")(schedules_list)
schedules_app.command("create")(schedules_create)
schedules_app.command("pause")(schedules_pause)
schedules_app.command("resume")(schedules_resume)
schedules_app.command("delete")(schedules_delete)
