"""Table definitions (SQLAlchemy Core). Alembic migrations mirror these.

`wip_jobs` keeps every column of the original design with its meaning (JSON arrays as
TEXT), so other tools can keep reading it; columns after the seed's are our additions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always read back timezone-aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC there.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = sa.MetaData()

collections = sa.Table(
    "collections",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

wip_products = sa.Table(
    "wip_products",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collection_name", sa.String(64), sa.ForeignKey("collections.name"), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("row_num", sa.Integer),
    sa.Column("extracted", sa.JSON),
    sa.Column("sources", sa.JSON),
    sa.Column("descriptions", sa.JSON),
    sa.Column("error", sa.Text),
    # The queued or running job this product belongs to; the guard against two active jobs.
    sa.Column("active_job_id", sa.String(36)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("collection_name", "sku", name="uq_wip_products_collection_sku"),
    sa.Index("ix_wip_products_collection_status", "collection_name", "status"),
)

wip_jobs = sa.Table(
    "wip_jobs",
    metadata,
    sa.Column("job_id", sa.Text, primary_key=True),
    sa.Column("collection_name", sa.Text, nullable=False),
    sa.Column("wip_ids", sa.Text, nullable=False),  # JSON array
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("total_products", sa.Integer, nullable=False),
    sa.Column("processed_products", sa.Integer, server_default="0", nullable=False),
    sa.Column("successful_products", sa.Integer, server_default="0", nullable=False),
    sa.Column("failed_products", sa.Integer, server_default="0", nullable=False),
    sa.Column("results", sa.Text),  # JSON array
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime, server_default=sa.func.current_timestamp()),
    sa.Column("started_at", UTCDateTime),
    sa.Column("completed_at", UTCDateTime),
    # Additions: ownership lease, cancel flag, event sequence, retry link.
    sa.Column("owner", sa.Text),
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Column("cancel_requested", sa.Boolean, server_default=sa.false(), nullable=False),
    sa.Column("event_seq", sa.Integer, server_default="0", nullable=False),
    sa.Column("retry_of", sa.Text),
    sa.Column("token_usage", sa.JSON),
    # The estimate of the job's latest event and when it was made: job status reads it here.
    sa.Column("eta_seconds", sa.Float),
    sa.Column("eta_at", UTCDateTime),
    # Claims since a product last finished, and the error that ended the last run: a job that
    # keeps dying before it gets anywhere ends `failed` instead of being claimed forever.
    sa.Column("claims", sa.Integer, server_default="0", nullable=False),
    sa.Column("last_error", sa.Text),
    # Set when the job ends with products failed on a transient cause: they are re-run as a new
    # job a delay after this (cleared once done).
    sa.Column("rerun_pending_since", UTCDateTime),
    # urgent | normal | low: queued jobs are claimed in this order (with ageing), then oldest first.
    sa.Column("priority", sa.Text, server_default="normal", nullable=False),
    # A `scheduled` job is queued once the database's clock passes `run_at`; a job a recurring
    # schedule made names it.
    sa.Column("run_at", UTCDateTime),
    sa.Column("schedule_id", sa.Integer),
    sa.Index("ix_wip_jobs_collection_created", "collection_name", "created_at"),
    sa.Index("ix_wip_jobs_status", "status"),
)

job_items = sa.Table(
    "job_items",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("wip_jobs.job_id"), primary_key=True),
    sa.Column("wip_id", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.String(16)),  # last step completed
    sa.Column("row_num", sa.Integer),
    sa.Column("checkpoint", sa.JSON, nullable=False),  # outputs of completed steps
    sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("error_step", sa.String(16)),
    sa.Column("error_transient", sa.Boolean),  # the failure may pass when tried again later
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("duration", sa.Float),
    # The product's entry of the job's `results`, as JSON, written with its end (migration 0008).
    sa.Column("result_json", sa.Text),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("wip_jobs.job_id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
)

# The embedded worksheet: one row per sheet row, cells keyed by column letter.
sheet_rows = sa.Table(
    "sheet_rows",
    metadata,
    sa.Column("collection_name", sa.String(64), primary_key=True),
    sa.Column("worksheet", sa.String(100), primary_key=True),
    sa.Column("row_num", sa.Integer, primary_key=True),
    sa.Column("cells", sa.JSON, nullable=False),
)

# API keys: only a SHA-256 hash of each key is kept; `prefix` (not secret) names it in listings.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("all_collections", sa.Boolean, server_default=sa.false(), nullable=False),
    # An admin key reaches every collection and may change what a collection connects to.
    sa.Column("is_admin", sa.Boolean, server_default=sa.false(), nullable=False),
    sa.Column("collections", sa.JSON, nullable=False),  # names; ignored when all_collections
    sa.Column("label", sa.String(100)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
)

# Where a collection's job endings are announced: an email address list or a webhook URL.
notification_targets = sa.Table(
    "notification_targets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collection_name", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # email | webhook
    sa.Column("address", sa.Text, nullable=False),  # the webhook URL, or comma-separated recipients
    sa.Column("secret", sa.Text),  # webhooks: the Standard Webhooks signing secret (whsec_…)
    sa.Column("events", sa.JSON, nullable=False),  # names of the events sent to this target
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# The outbox: one row per (event, target), written in the transaction that ends the job, so
# that a crash between the job's end and the send loses nothing. `attempts` is the log.
notification_outbox = sa.Table(
    "notification_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(80), nullable=False, unique=True),  # stable across attempts
    sa.Column("collection_name", sa.String(64), nullable=False, index=True),
    sa.Column("target_id", sa.Integer, nullable=False),
    sa.Column("job_id", sa.Text, nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed
    sa.Column("attempt_count", sa.Integer, server_default="0", nullable=False),
    sa.Column("attempts", sa.JSON, nullable=False),  # [{at, ok, detail}]
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_until", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_notification_outbox_due", "status", "next_attempt_at"),
)

# Recurring schedules: a cron expression read in a time zone, and which products each fire takes.
# `next_fire_at` is the compare-and-set key that makes each due time fire once across instances.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collection_name", sa.String(64), nullable=False, index=True),
    sa.Column("cron", sa.String(120), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("statuses", sa.JSON, nullable=False),  # the WIP statuses a fire takes
    sa.Column("paused", sa.Boolean, server_default=sa.false(), nullable=False),
    sa.Column("next_fire_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# What each due time of a schedule did: `fired` (jobs made), `skipped` (nothing to do) or
# `missed` (the service was down too long past it). One row per due time, at most.
schedule_fires = sa.Table(
    "schedule_fires",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("schedule_id", sa.Integer, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("fired_at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("job_ids", sa.JSON, nullable=False),
    sa.Column("products", sa.Integer, server_default="0", nullable=False),
    sa.UniqueConstraint("schedule_id", "due_at", name="uq_schedule_fires_due"),
)
