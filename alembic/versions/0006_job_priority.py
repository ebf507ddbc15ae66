"""job priority

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

`wip_jobs.priority` (`urgent`, `normal` or `low`) orders the queued jobs at claim time; the
jobs queued before this migration are `normal`. The index serves the claim's scan of the queue.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("wip_jobs", sa.Column("priority", sa.Text(), server_default="normal", nullable=False))


def downgrade() -> None:
    op.execute("ALTER TABLE wip_jobs DROP COLUMN priority")
