"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "sheet_rows",
        sa.Column("collection_name", sa.String(length=64), nullable=False),
        sa.Column("worksheet", sa.String(length=100), nullable=False),
        sa.Column("row_num", sa.Integer(), nullable=False),
        sa.Column("cells", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("collection_name", "worksheet", "row_num"),
    )
    op.create_table(
        "wip_jobs",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("collection_name", sa.Text(), nullable=False),
        sa.Column("wip_ids", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("total_products", sa.Integer(), nullable=False),
        sa.Column("processed_products", sa.Integer(), server_default="0", nullable=False),
        sa.Column("successful_products", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed_products", sa.Integer(), server_default="0", nullable=False),
        sa.Column("results", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.current_timestamp(),
            nullable=True,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("event_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_of", sa.Text(), nullable=True),
        sa.Column("token_usage", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("wip_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_wip_jobs_collection_created", ["collection_name", "created_at"], unique=False
        )
        batch_op.create_index("ix_wip_jobs_status", ["status"], unique=False)

    op.create_table(
        "job_events",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["wip_jobs.job_id"],
        ),
        sa.PrimaryKeyConstraint("job_id", "seq"),
    )
    op.create_table(
        "job_items",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("wip_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=True),
        sa.Column("row_num", sa.Integer(), nullable=True),
        sa.Column("checkpoint", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_step", sa.String(length=16), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["wip_jobs.job_id"],
        ),
        sa.PrimaryKeyConstraint("job_id", "wip_id"),
    )
    op.create_table(
        "wip_products",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("collection_name", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("row_num", sa.Integer(), nullable=True),
        sa.Column("extracted", sa.JSON(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=True),
        sa.Column("descriptions", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("active_job_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_name"],
            ["collections.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collection_name", "sku", name="uq_wip_products_collection_sku"),
    )
    with op.batch_alter_table("wip_products", schema=None) as batch_op:
        batch_op.create_index(
            "ix_wip_products_collection_status", ["collection_name", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("wip_products", schema=None) as batch_op:
        batch_op.drop_index("ix_wip_products_collection_status")

    op.drop_table("wip_products")
    op.drop_table("job_items")
    op.drop_table("job_events")
    with op.batch_alter_table("wip_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_wip_jobs_status")
        batch_op.drop_index("ix_wip_jobs_collection_created")

    op.drop_table("wip_jobs")
    op.drop_table("sheet_rows")
    op.drop_table("collections")
