"""each finished product's result as ready JSON on its ledger row

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

`job_items.result_json` is the product's entry of the job's `results`, written with its end, so
that the status of a running job joins stored text instead of rebuilding every finished product's
result from its checkpoint. Rows closed before this migration (or skipped when a job ends) have
none and are still built from their columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_items", sa.Column("result_json", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE job_items DROP COLUMN result_json")
