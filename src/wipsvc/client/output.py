"""How client commands run, print and exit.

Exit codes, the same for every command:

- 0: done (a followed job had every product succeed);
- 1: done, but a followed job had failed products, failed or was cancelled (or a check failed);
- 2: a usage error: a bad option, argument, file or setting (nothing was sent);
- 3: the server refused the request or could not be reached.

With ``--json`` a command prints one JSON object on stdout, in the API's own shape:
``{"success": true, …}`` with the answer's fields, or ``{"success": false, "error": {"code",
"message", "details"}}`` when it fails; progress and messages for people go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from wipsvc.api.schemas import Job, ProcessResponse
from wipsvc.client.api import (
    DEFAULT_URL,
    URL_ENV,
    ApiClient,
    ApiError,
    ClientConfig,
    ClientError,
    ServiceUnreachable,
)
from wipsvc.client.watch import WatchOptions, job_exit_code, watch_job
from wipsvc.domain.priority import Priority

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_SERVER = 3

Action = Callable[[ApiClient, Console], Awaitable[int]]

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar=URL_ENV, help=f"Server base URL (default {DEFAULT_URL})."),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON object on stdout, in the API's shape (messages: stderr)."),
]
WatchFlag = Annotated[bool, typer.Option("--watch", "-w", help="Follow the job until it ends.")]
PriorityOption = Annotated[
    Priority | None,
    typer.Option(help="The job's priority: urgent jobs are claimed and served first (default: normal)."),
]
ReconnectOption = Annotated[
    float,
    typer.Option(help="Seconds to keep reconnecting while the server is unreachable.", min=0),
]
PollOption = Annotated[
    float, typer.Option(help="Poll REST when no live event arrived for this many seconds.", min=0.1)
]


def run_command(url: str | None, action: Action, *, as_json: bool = False) -> None:
    """Run one command against the server and exit with its code. With ``as_json`` the
    action's console is stderr, so that stdout holds only the JSON it emits."""
    errors = Console(stderr=True, highlight=False)
    console = errors if as_json else Console(highlight=False)

    async def main() -> int:
        async with ApiClient(ClientConfig.from_env(url)) as api:
            return await action(api, console)

    try:
        code = asyncio.run(main())
    except ClientError as error:
        errors.print(Text("error: ", "bold red") + Text(str(error)), soft_wrap=True)
        if as_json:
            emit_json(error_body(error))
        raise typer.Exit(EXIT_SERVER) from None
    except KeyboardInterrupt:
        errors.print("interrupted (a job already started goes on on the server)")
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def error_body(error: ClientError) -> dict[str, Any]:
    if isinstance(error, ApiError):
        code, message, details = error.code, error.message, error.details
    else:
        code = "unreachable" if isinstance(error, ServiceUnreachable) else "client_error"
        message, details = str(error), None
    return {"success": False, "error": {"code": code, "message": message, "details": details}}


def emit_json(data: dict[str, Any]) -> None:
    """One JSON object on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def usage_error(message: str, *, as_json: bool = False) -> typer.Exit:
    """A one-line usage error (exit 2), as JSON too when asked."""
    Console(stderr=True, highlight=False).print(Text("error: ", "bold red") + Text(message), soft_wrap=True)
    if as_json:
        emit_json({"success": False, "error": {"code": "usage_error", "message": message, "details": None}})
    return typer.Exit(EXIT_USAGE)


def follow(
    api: ApiClient, console: Console, collection: str, job_id: str, reconnect: float, poll: float
) -> Awaitable[Job]:
    options = WatchOptions(reconnect_timeout=reconnect, poll_interval=poll)
    return watch_job(api, collection, job_id, console=console, options=options)


async def after_start(
    api: ApiClient,
    console: Console,
    collection: str,
    started: ProcessResponse,
    watch: bool,
    as_json: bool,
    reconnect: float,
    poll: float,
    extra: dict[str, Any] | None = None,
) -> int:
    """Follow a job just started, or say how to; with ``as_json``, print the start answer, plus
    ``extra`` fields and the final job when followed."""
    answer = started.model_dump(mode="json") | (extra or {})
    if not watch:
        if as_json:
            emit_json(answer)
        else:
            # Whole on one line: a command to copy must never be wrapped.
            hint = f"Follow it: wipsvc watch {started.job_id} --collection {collection}"
            console.print(hint, markup=False, soft_wrap=True)
        return 0
    job = await follow(api, console, collection, started.job_id, reconnect, poll)
    if as_json:
        emit_json(answer | {"job": job.model_dump(mode="json")})
    return job_exit_code(job)


def start_and_follow(
    url: str | None,
    collection: str,
    start: Callable[[ApiClient], Awaitable[ProcessResponse]],
    heading: Callable[[ProcessResponse], str],
    *,
    watch: bool,
    as_json: bool,
    reconnect: float,
    poll: float,
) -> None:
    """A command that starts a job: say what started (the job id alone on its line), then
    follow it or say how to (see :func:`after_start`)."""

    async def action(api: ApiClient, console: Console) -> int:
        started = await start(api)
        console.print(heading(started), markup=False)
        if not as_json:
            console.print(started.job_id, markup=False)
        return await after_start(api, console, collection, started, watch, as_json, reconnect, poll)

    run_command(url, action, as_json=as_json)
