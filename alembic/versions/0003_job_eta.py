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
    # batch mode: SQLite cannot add columns to a table with constraints in place otherwise
    with op.batch_alter_table("wip_jobs") as batch:
        batch.add_column(sa.Column("eta_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("eta_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wip_jobs") as batch:
        batch.drop_column("eta_at")
        batch.drop_column("eta_seconds")
