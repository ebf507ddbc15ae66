"""How the service writes a moment in JSON: ISO 8601 in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    """``2026-11-30T12:00:00.123456Z`` for an aware ``moment`` (any zone)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
