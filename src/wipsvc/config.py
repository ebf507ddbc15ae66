"""Settings, read from ``WIPSVC_*`` environment variables and an optional ``.env`` file.

There is no module-level instance: ``create_app(settings)`` and the CLI build one,
and tests pass their own.

Longer than most modules on purpose: it is the one list of every setting, each with the
description the README's settings table is generated from (`make readme`), plus where the
default database lives.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from platformdirs import user_data_path
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Where the database used to be, relative to wherever the service was started.
LEGACY_DATABASE = Path("data/wipsvc.db")


def default_data_dir() -> Path:
    """The user's data directory for wipsvc (XDG: ~/.local/share/wipsvc on Linux)."""
    return user_data_path("wipsvc", appauthor=False)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WIPSVC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Service
    data_dir: Path | None = Field(
        None,
        description="Folder of the default SQLite database (default: the user's data directory, "
        "~/.local/share/wipsvc on Linux).",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://… "
        "(default: wipsvc.db in the data folder).",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP server binds to.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host names the service answers to besides localhost, 127.0.0.1, "
        "[::1] and WIPSVC_HOST (the name clients use behind a proxy). With no API key every other Host "
        "header is refused; once set, it is checked with keys too.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or CIDR ranges of reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed; unset = those headers are ignored.",
    )
    max_header_bytes: int = Field(
        65_536, ge=4096, description="Largest request line plus headers accepted, in bytes; larger get 431."
    )
    log_level: str = Field("info", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or as one JSON object each (uvicorn's too), with request id, "
        "job id and collection when known.",
    )
    shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        description="On SIGTERM, how long the steps in flight may take to finish before their jobs are "
        "handed back (checkpointed, leases released) for the next instance to resume.",
    )
    instance_id: str | None = Field(
        None, description="Name of this instance in job leases (default: host name + random suffix)."
    )

    # Jobs
    max_batch: int = Field(100, ge=1, le=10_000, description="Most products in one job.")
    workers_per_job: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Most products of one job in flight at once (default: the batch size, so every "
        "product of a job may start). The quota buckets, Apps Script's concurrency limit and the LLM's "
        "rate set the pace: a product waits for its tokens, never for a free worker.",
    )
    product_delay_seconds: float = Field(
        0.0, ge=0, description="Pause each worker takes between products (the original design used 20)."
    )
    jobs_per_collection: int = Field(
        1,
        ge=1,
        description="Jobs of one collection running at once. An `urgent` job may run as one more while "
        "a job of lower priority of its collection runs.",
    )
    priority_ageing_seconds: float = Field(
        120.0,
        gt=0,
        description="Waiting raises priority one class per this many seconds, for queued jobs and for "
        "calls waiting for a quota token: a `low` one ranks as `urgent` after twice this, so no wait "
        "is unbounded.",
    )
    max_running_jobs: int = Field(8, ge=1, description="Jobs this instance runs at once.")
    lease_seconds: float = Field(15.0, gt=0, description="How long a job's lease lasts unless renewed.")
    claim_interval_seconds: float = Field(
        2.0, gt=0, description="How often the registry looks for queued or orphaned jobs."
    )
    lease_safety_margin_seconds: float = Field(
        5.0,
        gt=0,
        description="An owner starts a Sheets write, Apps Script run or LLM call only while its lease "
        "is certainly valid: until the renewal's sending time plus the lease minus this margin (at "
        "most a third of the lease is used). It must exceed the clocks' drift over one lease time.",
    )
    sheets_timeout_seconds: float = Field(
        4.0,
        gt=0,
        description="Time limit of one Google Sheets request; kept below the lease safety margin (at "
        "most 0.8 of it is used), so that a request started under a valid lease ends before it expires.",
    )
    db_statement_timeout_seconds: float = Field(
        5.0,
        ge=0,
        description="PostgreSQL statement_timeout of the service's connections (0 = none); well "
        "within the lease, so that no lock wait outlasts it.",
    )
    db_idle_in_transaction_timeout_seconds: float = Field(
        5.0,
        ge=0,
        description="PostgreSQL idle_in_transaction_session_timeout of the service's connections (0 = "
        "none): a paused instance's open transaction, and the job row locks it holds, end after this. "
        "The instances also end the service's sessions stalled on a frozen client mid-statement, "
        "which PostgreSQL does not: waiting to read after this, blocked writing after the statement "
        "timeout plus this.",
    )
    step_max_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Tries per step on transient errors (timeouts, 5xx, unusable LLM answers) before a "
        "product fails: also the most LLM or Sheets requests one call of a step makes.",
    )
    retry_base_delay_seconds: float = Field(
        1.0, ge=0, description="First backoff between tries; doubles each time, with full jitter."
    )
    retry_max_delay_seconds: float = Field(30.0, ge=0, description="Longest backoff between tries.")
    quota_wait_seconds: float = Field(
        300.0,
        ge=0,
        description="How long a step waits out 429 quota pauses without using its tries; after that "
        "a 429 counts as a transient error.",
    )
    job_max_claims: int = Field(
        5,
        ge=1,
        description="Times a job may be claimed with no product finished in between before it ends "
        "`failed` with its last error (a graceful shutdown's release does not count).",
    )

    # Real-time
    socketio_enabled: bool = Field(True, description="Serve Socket.IO progress events at /socket.io.")
    redis_url: str | None = Field(
        None, description="Redis URL shared by several instances (Socket.IO fan-out); unset = one instance."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins allowed to call the API from a browser."
    )
    socket_key_recheck_seconds: float = Field(
        10.0,
        gt=0,
        description="How often open Socket.IO connections' API keys are checked: a revoked key's "
        "connections are closed within this time.",
    )
    socket_max_queued_packets: int = Field(
        2000,
        ge=100,
        description="Packets waiting to be sent to one Socket.IO connection beyond which it is closed "
        "(a client that stops reading cannot make the server buffer without limit).",
    )
    socket_replay_page: int = Field(
        500,
        ge=1,
        le=10_000,
        description="Most stored events one `subscribe` replays; its answer says whether more are left.",
    )
    socket_subscribes_per_minute: int = Field(
        60,
        ge=1,
        description="`subscribe` requests one Socket.IO connection may make per minute, in bursts of up "
        "to as many; more get an error answer.",
    )

    # Scraping
    scrape_timeout_seconds: float = Field(20.0, gt=0, description="Whole-fetch time limit per page.")
    scrape_max_bytes: int = Field(5_000_000, gt=0, description="Largest page body accepted.")
    scrape_max_redirects: int = Field(5, ge=0, description="Redirects followed per page.")
    scrape_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated hosts or CIDR ranges that may be fetched although not public "
        "(product pages, and the web-app URLs of collections' settings).",
    )
    scrape_user_agent: str = Field("wipsvc/0.1 (+catalogue importer)", description="User-Agent header.")

    # Jobs at set times: one-off (`run_at`) and recurring schedules
    schedule_max_ahead_days: float = Field(
        90.0,
        gt=0,
        le=3650,
        description="How far ahead a job's `run_at` may be (a later one answers 422).",
    )
    schedule_min_interval_seconds: float = Field(
        60.0,
        ge=1,
        description="Shortest interval allowed between two due times of a recurring schedule's cron.",
    )
    schedule_missed_fire_grace_seconds: float = Field(
        600.0,
        ge=0,
        description="A schedule whose due time passed while the service was down fires once when it "
        "comes back if that due time is at most this old; an older one is recorded `missed`, no job.",
    )
    schedule_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often each instance looks for schedules due to fire."
    )

    # Automatic re-runs and notifications when a job ends
    auto_rerun_delay_seconds: float = Field(
        300.0,
        ge=0,
        description="Delay after a job ends before its products that failed on a transient cause (an "
        "outage longer than the retries) are re-run once as a new job (collections may turn it off).",
    )
    public_url: str | None = Field(
        None, description="The service's address as users reach it, for links to job pages in notifications."
    )
    notify_max_attempts: int = Field(6, ge=1, description="Attempts at delivering one notification.")
    notify_retry_base_seconds: float = Field(
        5.0, gt=0, description="First wait after a failed delivery; doubles per attempt."
    )
    notify_retry_max_seconds: float = Field(600.0, gt=0, description="Longest wait between deliveries.")
    notify_poll_seconds: float = Field(
        2.0, gt=0, description="How often an instance looks for notifications due (sooner when a job ends)."
    )
    notify_timeout_seconds: float = Field(10.0, gt=0, description="Time limit of one delivery attempt.")
    smtp_host: str | None = Field(None, description="SMTP server for email notifications (none: no email).")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="`starttls`, `tls` (implicit, port 465) or `none` (loopback test servers)."
    )
    smtp_credentials: str | None = Field(
        None,
        description="Name of a file in WIPSVC_CREDENTIALS_DIR holding the SMTP login as JSON "
        '`{"username": …, "password": …}` (none: no login).',
    )
    smtp_from: str = Field("wipsvc@localhost", description="Sender address of notification emails.")

    # External services (base URLs are settings so that proxies, emulators and tests can redirect them)
    sheets_api_url: str = Field("https://sheets.googleapis.com", description="Google Sheets API base URL.")
    apps_script_api_url: str = Field("https://script.googleapis.com", description="Apps Script API base URL.")
    google_credentials_file: str | None = Field(
        None, description="Service-account JSON used for Google Sheets (collections may override)."
    )
    credentials_dir: str | None = Field(
        None,
        description="Directory of the credential files collections may name (`sheet.credentials_file`, "
        "`cleaning.oauth_credentials_file`): a collection names a file relative to it, never by path.",
    )
    llm_base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible API base URL.")
    llm_api_key: SecretStr | None = Field(
        None, description="LLM API key (OPENAI_API_KEY is used when unset); no key = no LLM."
    )
    llm_model: str = Field("gpt-4o-mini", description="Model used for extraction and descriptions.")

    # Quotas: one bucket per external resource, shared by every job of this instance. A limit is
    # the most calls in any window of `quota_period_seconds`; None = no limit of ours (a 429 still
    # pauses the resource).
    sheets_write_per_minute: int | None = Field(
        60, ge=1, description="Google Sheets write requests per minute per user (Google's default quota)."
    )
    sheets_read_per_minute: int | None = Field(
        60, ge=1, description="Google Sheets read requests per minute per user (Google's default quota)."
    )
    sheets_write_per_minute_per_project: int | None = Field(
        300,
        ge=1,
        description="Google Sheets write requests per minute per project, above every user's own "
        "(Google's default quota); the project comes from the credential file.",
    )
    sheets_read_per_minute_per_project: int | None = Field(
        300, ge=1, description="Google Sheets read requests per minute per project (Google's default quota)."
    )
    apps_script_per_minute: int | None = Field(
        None, ge=1, description="Apps Script executions per minute (Google publishes no such quota)."
    )
    apps_script_max_concurrent: int | None = Field(
        30, ge=1, description="Apps Script executions at once (Google's limit: 30 per user)."
    )
    llm_requests_per_minute: int | None = Field(
        500,
        ge=1,
        description="LLM requests per minute (OpenAI's tier-1 limit; set your account's): half of them at "
        "once, then paced evenly.",
    )
    llm_tokens_per_minute: int | None = Field(
        None, ge=1, description="LLM tokens per minute, prompt estimate + max completion (None = unlimited)."
    )
    quota_period_seconds: float = Field(
        60.0,
        gt=0,
        description="The window the *_per_minute limits are counted over: Google's minute. Benchmarks "
        "shorten it together with the fakes' latencies to run in scaled time.",
    )
    rate_limit_backoff_seconds: float = Field(
        1.0, gt=0, description="First pause of a resource after a 429 without Retry-After; doubles per 429."
    )
    rate_limit_max_backoff_seconds: float = Field(
        32.0, gt=0, description="Longest pause after a 429 without Retry-After (Google's max_backoff)."
    )
    share_quotas_between_instances: bool = Field(
        True,
        description="Instances running jobs on one PostgreSQL split each quota above evenly between "
        "them (an idle instance takes no part). Turn off when each instance uses its own accounts.",
    )
    sheets_coalesce: bool = Field(
        True, description="Send Sheets writes of several products that are ready together as one request."
    )
    sheets_coalesce_window_ms: float = Field(
        250.0,
        ge=0,
        description="How long the first write waits for others to join its request (ms). A quarter of a "
        "second is little beside a product's seconds, and gathers enough writes that a 100-product job "
        "stays within the bucket's burst instead of being paced (50 ms: 0.80 of the bound, not 0.93).",
    )

    @field_validator(
        "scrape_allowed_hosts", "cors_origins", "allowed_hosts", "trusted_proxies", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # Set when the database URL was not given: how the default was chosen, to tell the operator.
    _database_warning: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _default_database(self) -> Self:
        if self.database_url:
            return self
        if self.data_dir is None and LEGACY_DATABASE.is_file():
            # A database made before the data folder existed: keep using it rather than start empty.
            self.database_url = sqlite_url(LEGACY_DATABASE.resolve())
            self._database_warning = (
                f"using the database at {LEGACY_DATABASE.resolve()}, the old default location; move it "
                f"to {default_data_dir() / 'wipsvc.db'} or set WIPSVC_DATA_DIR or WIPSVC_DATABASE_URL"
            )
        else:
            folder = self.data_dir if self.data_dir is not None else default_data_dir()
            self.database_url = sqlite_url(folder.expanduser().resolve() / "wipsvc.db")
        return self

    def database_description(self) -> str:
        """The database in use, fit to print: a path for SQLite, the URL without its password otherwise."""
        from sqlalchemy.engine import make_url  # not at import: `wipsvc --help` needs no SQLAlchemy

        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database:
            return url.database
        return url.render_as_string(hide_password=True)

    @property
    def database_warning(self) -> str | None:
        """Why the database lies where it does, when that needs the operator's attention."""
        return self._database_warning

    def database_notice(self) -> list[str]:
        """What every command that opens the database prints first (on stderr): which one it uses."""
        lines = [f"database: {self.database_description()}"]
        if self._database_warning:
            lines.append(f"warning: {self._database_warning}")
        return lines

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError("unknown logging level; use one of debug, info, warning, error, critical")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    # --- Access and resource limits (API keys: `wipsvc keys …`; see wipsvc.auth, wipsvc.api.limits) ---
    max_request_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted, in bytes; larger ones get 413."
    )
    job_starts_per_minute: int = Field(
        30,
        ge=1,
        description="Jobs (process or retry) one API key, or one client address when no keys exist, "
        "may start per minute on each instance, in bursts of up to as many; more get 429 with Retry-After.",
    )
    max_active_jobs_per_collection: int = Field(
        20, ge=1, description="Most queued plus running jobs per collection; starting another gets 409."
    )
    job_history_retention_days: float = Field(
        30.0,
        ge=0,
        description="Days a finished job keeps its progress events and product ledger; after that they are "
        "pruned (hourly), while the job row and its `results` stay. 0 keeps them forever.",
    )
