"""admin keys, a job's claim count, credential names and clean stored settings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Credential paths inside the credentials directory become names relative to it; the
directory comes from the migration's ``credentials_dir`` attribute or, failing that,
``WIPSVC_CREDENTIALS_DIR``. Other paths stay as they are: check-config and jobs then say
to move the file. Stored settings lose the characters input may no longer carry (a NUL
stored before made every job of the collection fail on PostgreSQL).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context, op

from wipsvc.credentials import CREDENTIAL_FIELDS, name_for
from wipsvc.text import clean_json

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_collections = sa.table("collections", sa.column("name", sa.String), sa.column("config", sa.JSON))


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("wip_jobs", sa.Column("claims", sa.Integer(), server_default="0", nullable=False))
    op.add_column("wip_jobs", sa.Column("last_error", sa.Text(), nullable=True))
    credentials_dir = context.config.attributes.get("credentials_dir") or os.environ.get(
        "WIPSVC_CREDENTIALS_DIR"
    )
    connection = op.get_bind()
    for name, config in connection.execute(sa.select(_collections.c.name, _collections.c.config)).all():
        if not isinstance(config, dict):
            continue
        updated = clean_json(config)
        for section, field in CREDENTIAL_FIELDS:
            part = updated.get(section)
            stored = part.get(field) if isinstance(part, dict) else None
            if credentials_dir and isinstance(stored, str):
                named = name_for(stored, credentials_dir)
                if named is not None:
                    part[field] = named
        if updated != config:
            connection.execute(
                _collections.update().where(_collections.c.name == name).values(config=updated)
            )


def downgrade() -> None:
    # Plain DROP COLUMN (see 0003): a batch copy would trip over the foreign keys on SQLite.
    op.execute("ALTER TABLE wip_jobs DROP COLUMN last_error")
    op.execute("ALTER TABLE wip_jobs DROP COLUMN claims")
    op.execute("ALTER TABLE api_keys DROP COLUMN is_admin")
