"""scheduled jobs (`run_at`), recurring schedules and their fires log

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

`wip_jobs.run_at` is when a `scheduled` job is queued; `wip_jobs.schedule_id` names the
recurring schedule that made a job. `schedules.next_fire_at` is the compare-and-set key of a
fire; `schedule_fires` keeps one row per due time (fired, skipped or missed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("wip_jobs", sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("wip_jobs", sa.Column("schedule_id", sa.Integer(), nullable=True))
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("collection_name", sa.String(64), nullable=False),
        sa.Column("cron", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("statuses", sa.JSON(), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_schedules_collection_name", "schedules", ["collection_name"])
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("job_ids", sa.JSON(), nullable=False),
        sa.Column("products", sa.Integer(), server_default="0", nullable=False),
        sa.UniqueConstraint("schedule_id", "due_at", name="uq_schedule_fires_due"),
    )


def downgrade() -> None:
    op.drop_table("schedule_fires")
    op.drop_index("ix_schedules_collection_name", "schedules")
    op.drop_table("schedules")
    op.execute("ALTER TABLE wip_jobs DROP COLUMN schedule_id")
    op.execute("ALTER TABLE wip_jobs DROP COLUMN run_at")
