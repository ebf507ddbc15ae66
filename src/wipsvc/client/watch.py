"""Following a job live: Socket.IO events for progress, REST for the truth.

Events carry a per-job ``seq``. The watcher keeps the highest *gapless* seq it has seen
and, after every (re)connect, asks the server to ``subscribe`` from there, so events sent
while it was away are replayed; anything seen twice (replayed and live) is dropped. If the
server goes away (a restart mid-job), it keeps reconnecting until ``reconnect_timeout``
has passed without any contact. REST is polled whenever no event arrives for
``poll_interval``, so a silent socket can stall the display but never the outcome, and the
final job (with its per-product results) always comes from REST.

One module although it is long: the socket loop, the REST polls and the progress display share
the watcher's state (last gapless seq, counts, contact lost or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Table
from rich.text import Text

from wipsvc.api.schemas import Job
from wipsvc.client.api import ApiClient, ApiError, ClientError, ServiceUnreachable
from wipsvc.domain.events import EVENT_NAME, JobProgress
from wipsvc.domain.statuses import (
    EVENT_STATUS_FOR_TERMINAL,
    TERMINAL_JOB_STATUSES,
    EventPhase,
    ItemStatus,
    JobStatus,
)

if TYPE_CHECKING:
    import aiohttp

TERMINAL_EVENT_STATUSES = frozenset(EVENT_STATUS_FOR_TERMINAL.values())


@dataclass(frozen=True, slots=True)
class WatchOptions:
    reconnect_timeout: float = 300.0  # seconds without any contact before giving up
    poll_interval: float = 5.0  # poll REST when no event arrived for this long
    connect_timeout: float = 5.0
    retry_delay_max: float = 2.0  # between reconnect attempts (doubling from 0.25 s)


def job_exit_code(job: Job) -> int:
    """0 only for a completed job without a failed product."""
    return 0 if job.status is JobStatus.COMPLETED and job.failed_products == 0 else 1


async def watch_job(
    api: ApiClient,
    collection: str,
    job_id: str,
    *,
    console: Console | None = None,
    options: WatchOptions | None = None,
) -> Job:
    """Show a job's live progress until it ends, then its results; returns the final job."""
    console = console or Console()
    job = await _Watcher(api, collection, job_id, console, options or WatchOptions()).run()
    console.print(results_table(job))
    console.print(outcome_line(job))
    return job


class _EtaColumn(ProgressColumn):
    """Counts down locally from the server's last estimate."""

    def render(self, task: Task) -> Text:
        eta_at = task.fields.get("eta_at")
        if task.finished or eta_at is None:
            return Text("ETA -:--:--", style="progress.remaining")
        left = max(0, round(eta_at - time.monotonic()))
        return Text(f"ETA {timedelta(seconds=left)}", style="progress.remaining")


class _Watcher:
    def __init__(
        self, api: ApiClient, collection: str, job_id: str, console: Console, options: WatchOptions
    ) -> None:
        self._api, self._collection, self._job_id = api, collection, job_id
        self._console, self._options = console, options
        # Events, or the error that ends the watch, from the socket task.
        self._inbox: asyncio.Queue[JobProgress | ClientError] = asyncio.Queue()
        self._seen: set[int] = set()
        self._gapless_seq = 0
        self._newest_seq = 0
        self._down_since: float | None = None
        self._processed = self._failed = 0
        self._rate_origin: tuple[float, int] | None = None
        # A terminal shows a live bar; logs and pipes get one line per product instead.
        self._lines = not console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"),
            TextColumn("{task.fields[rate]}"),
            _EtaColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=True,
            disable=self._lines,
        )
        self._task = self._progress.add_task(f"job {job_id[:8]}", total=None, failed="", rate="", note="")

    async def run(self) -> Job:
        job = await self._api.get_job(self._collection, self._job_id)
        self._apply_counts(job.total_products, job.processed_products, job.failed_products, job.eta_seconds)
        if job.status in TERMINAL_JOB_STATUSES:
            return job
        if self._lines:
            self._console.print(
                f"Following job {self._job_id} ({job.status.value}, {job.total_products} products)",
                soft_wrap=True,
            )
        # Imported here, not above: they are slow to import and most commands never need them.
        import aiohttp

        # Our own session: engine.io leaves its own open when a connection attempt fails.
        async with aiohttp.ClientSession() as session:
            with self._progress:
                socket_task = asyncio.create_task(self._socket_loop(session))
                try:
                    return await self._follow()
                finally:
                    socket_task.cancel()
                    # Whatever ended the socket task early, REST polling already stood in for it.
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await socket_task

    async def _follow(self) -> Job:
        while True:
            try:
                item = await asyncio.wait_for(self._inbox.get(), self._options.poll_interval)
            except TimeoutError:
                job = await self._poll()
                if job is not None and job.status in TERMINAL_JOB_STATUSES:
                    return job
                continue
            if isinstance(item, ClientError):
                raise item
            if self._apply_event(item):
                return await self._final_job()

    # -- REST ------------------------------------------------------------------------------

    async def _poll(self) -> Job | None:
        try:
            job = await self._api.get_job(self._collection, self._job_id)
        except ServiceUnreachable:
            self._lost_contact()
            return None
        except ApiError as error:
            if error.status_code < 500 and error.status_code != 429:
                raise
            self._lost_contact()  # rate-limited, or a proxy's 502 while the server restarts
            return None
        self._regained_contact()
        self._apply_counts(job.total_products, job.processed_products, job.failed_products, job.eta_seconds)
        return job

    async def _final_job(self) -> Job:
        while True:
            job = await self._poll()
            if job is not None and job.status in TERMINAL_JOB_STATUSES:
                return job
            await asyncio.sleep(0.2)

    # -- Socket.IO -------------------------------------------------------------------------

    async def _socket_loop(self, session: aiohttp.ClientSession) -> None:
        import aiohttp
        import socketio

        delay = 0.25
        was_connected = False
        while True:
            lost = asyncio.Event()
            client = self._client(session, lost)
            try:
                await client.connect(
                    self._api.config.url,
                    transports=["websocket"],
                    headers=self._api.config.headers,
                    auth={"api_key": self._api.config.api_key} if self._api.config.api_key else None,
                    wait_timeout=self._options.connect_timeout,
                )
                if was_connected:
                    # Before subscribing: the events it replays are printed next.
                    self._say("[green]reconnected[/]; catching up")
                ack = await client.call(
                    "subscribe",
                    {"job_id": self._job_id, "after_seq": self._gapless_seq},
                    timeout=self._options.connect_timeout,
                )
                # A replay comes in pages: ask for the next until none is left.
                while isinstance(ack, dict) and ack.get("ok") and ack.get("more"):
                    ack = await client.call(
                        "subscribe",
                        {"job_id": self._job_id, "after_seq": ack["last_seq"]},
                        timeout=self._options.connect_timeout,
                    )
                if not isinstance(ack, dict) or not ack.get("ok"):
                    reason = ack.get("error") if isinstance(ack, dict) else ack
                    self._say(Text(f"live updates unavailable ({reason}); polling instead", "yellow"))
                    return
                self._regained_contact()
                delay, was_connected = 0.25, True
                await lost.wait()
                self._say("[yellow]connection lost; reconnecting…")
            except (socketio.exceptions.SocketIOError, OSError, aiohttp.ClientError, ValueError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._options.connect_timeout):
                        await client.disconnect()
            try:
                self._lost_contact()
            except ServiceUnreachable as error:
                self._inbox.put_nowait(error)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._options.retry_delay_max)

    def _client(self, session: aiohttp.ClientSession, lost: asyncio.Event) -> Any:
        import socketio

        # Reconnection is ours (with a deadline and a re-subscribe), not the library's.
        client = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=session)

        async def on_event(data: Any) -> None:
            event = parse_event(data)
            if event is not None and event.job_id == self._job_id:
                self._inbox.put_nowait(event)

        async def on_disconnect(*_: Any) -> None:
            lost.set()

        client.on(EVENT_NAME, on_event)
        client.on("disconnect", on_disconnect)
        return client

    def _lost_contact(self) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._set_note("[yellow]reconnecting…")
        elif now - self._down_since > self._options.reconnect_timeout:
            raise ServiceUnreachable(
                f"lost contact with wipsvc at {self._api.config.url} for more than "
                f"{self._options.reconnect_timeout:g}s; job {self._job_id} may still be running"
            )

    def _regained_contact(self) -> None:
        if self._down_since is not None:
            self._down_since = None
            self._set_note("")

    # -- state and display -----------------------------------------------------------------

    def _apply_event(self, event: JobProgress) -> bool:
        """Record one event (ignoring duplicates); True when it says the job ended."""
        if event.seq in self._seen:
            return False
        self._seen.add(event.seq)
        while self._gapless_seq + 1 in self._seen:
            self._gapless_seq += 1
        if event.seq < self._newest_seq:
            # A replayed old event: its product is news, its counters and estimate are not.
            self._report_product(event)
            return event.status in TERMINAL_EVENT_STATUSES
        self._newest_seq = event.seq
        self._apply_counts(event.total, event.processed, event.failed, _eta_now(event))
        self._report_product(event)
        return event.status in TERMINAL_EVENT_STATUSES

    def _apply_counts(self, total: int, processed: int, failed: int, eta: float | None) -> None:
        now = time.monotonic()
        # Counters only grow; an older answer (a slow poll) must not move the bar back.
        self._processed, self._failed = max(self._processed, processed), max(self._failed, failed)
        if self._rate_origin is None:
            self._rate_origin = (now, self._processed)
        self._progress.update(
            self._task,
            total=total or None,
            completed=self._processed,
            failed=f"[red]{self._failed} failed" if self._failed else "[dim]0 failed",
            rate=self._rate(now),
            eta_at=None if eta is None else now + eta,
        )

    def _rate(self, now: float) -> str:
        assert self._rate_origin is not None
        started, done_then = self._rate_origin
        done, elapsed = self._processed - done_then, now - started
        if done <= 0 or elapsed <= 0:
            return ""
        per_second = done / elapsed
        return f"{per_second:.1f}/s" if per_second >= 1 else f"{per_second * 60:.1f}/min"

    def _report_product(self, event: JobProgress) -> None:
        product = event.current_product
        if product is None:
            if self._lines and event.status in TERMINAL_EVENT_STATUSES:
                self._say(f"job {event.status.value}")
            elif event.phase is EventPhase.PAUSED:
                self._say("job paused: its server is shutting down; the next one resumes it")
            elif event.phase is EventPhase.RESUMED:
                self._say("job resumed")
            return
        # SKUs and errors come from users, pages and servers: never read them as markup.
        line = Text(f"[{event.processed}/{event.total}] ")
        if product.success:
            if self._lines:
                self._say(line + Text("✓", "green") + Text(f" {product.sku} → row {product.row_num}"))
        else:
            error = product.error or "failed"
            self._say(line + Text("✗", "red") + Text(f" {product.sku}: {error}"))

    def _set_note(self, note: str) -> None:
        self._progress.update(self._task, note=note)

    def _say(self, message: str | Text) -> None:
        # Log lines stay whole (for grep); above a live bar, they fit the terminal.
        self._progress.console.print(message, soft_wrap=self._lines)


def parse_event(data: Any) -> JobProgress | None:
    """A `wip_job_progress` payload as the typed event, validated once here at the edge; None
    for one that is not an event. Fields a newer server adds are dropped, not refused."""
    if not isinstance(data, dict):
        return None
    try:
        return JobProgress.model_validate({k: v for k, v in data.items() if k in JobProgress.model_fields})
    except ValidationError:
        return None


def _eta_now(event: JobProgress) -> float | None:
    """The event's estimate, less the time since it was made."""
    if event.eta_seconds is None:
        return None
    try:
        made = datetime.fromisoformat(event.timestamp)
        age = max(0.0, (datetime.now(UTC) - made).total_seconds())
    except (ValueError, TypeError):  # not ISO 8601, or without a time zone
        age = 0.0
    return max(0.0, event.eta_seconds - age)


def results_table(job: Job, *, max_rows: int | None = 30) -> Table:
    """One row per product; past ``max_rows``, only the products that did not succeed."""
    results = job.results
    hidden = 0
    if max_rows is not None and len(results) > max_rows:
        results = [r for r in results if r.status is not ItemStatus.SUCCEEDED][:max_rows]
        hidden = len(job.results) - len(results)
    table = Table(title=f"job {job.job_id} · {job.collection_name}", title_justify="left")
    if hidden:
        table.caption = f"{hidden} more not shown (all: wipsvc jobs show {job.collection_name} {job.job_id})"
    table.add_column("sku", no_wrap=True)
    table.add_column("row", justify="right")
    table.add_column("status")
    table.add_column("duration", justify="right")
    table.add_column("error", overflow="fold")
    styles = {ItemStatus.SUCCEEDED: "green", ItemStatus.FAILED: "red", ItemStatus.SKIPPED: "yellow"}
    for result in results:
        error = f"{result.error_step}: {result.error}" if result.error_step and result.error else result.error
        table.add_row(
            Text(result.sku),
            "-" if result.row_num is None else str(result.row_num),
            Text(result.status.value, style=styles.get(result.status, "")),
            "-" if result.duration is None else f"{result.duration:.1f}s",
            Text(error or ""),
        )
    return table


def outcome_line(job: Job) -> Text:
    took = ""
    if job.started_at and job.completed_at:
        took = f" in {(job.completed_at - job.started_at).total_seconds():.1f}s"
    counts = f"{job.successful_products} succeeded, {job.failed_products} failed of {job.total_products}"
    if job_exit_code(job) == 0:
        return Text.from_markup(f"[bold green]✓ completed[/]{took}: ") + Text(counts)
    if job.status is JobStatus.COMPLETED:
        return Text.from_markup(f"[bold yellow]✗ completed with failures[/]{took}: ") + Text(counts)
    detail = f" ({job.error})" if job.error else ""
    return Text.from_markup(f"[bold red]✗ {job.status.value}[/]{took}: ") + Text(counts + detail)
