"""the job's latest ETA on its row

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("wip_jobs", sa.Column("eta_seconds", sa.Float(), nullable=True))
    op.add_column("wip_jobs", sa.Column("eta_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite has it since 3.35): a batch copy of the table
    # would trip over the foreign keys of job_items and job_events on SQLite.
    op.execute("ALTER TABLE wip_jobs DROP COLUMN eta_at")
    op.execute("ALTER TABLE wip_jobs DROP COLUMN eta_seconds")
