"""notification targets, the notification outbox, and what automatic re-runs need

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

`job_items.error_transient` keeps whether a product's failure may pass when tried again;
`wip_jobs.rerun_pending_since` marks a job whose transient failures await their re-run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_targets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("collection_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notification_targets_collection_name", "notification_targets", ["collection_name"])
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(80), nullable=False, unique=True),
        sa.Column("collection_name", sa.String(64), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notification_outbox_collection_name", "notification_outbox", ["collection_name"])
    op.create_index("ix_notification_outbox_due", "notification_outbox", ["status", "next_attempt_at"])
    op.add_column("job_items", sa.Column("error_transient", sa.Boolean(), nullable=True))
    op.add_column("wip_jobs", sa.Column("rerun_pending_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE wip_jobs DROP COLUMN rerun_pending_since")
    op.execute("ALTER TABLE job_items DROP COLUMN error_transient")
    op.drop_table("notification_outbox")
    op.drop_table("notification_targets")
