"""Recurring schedules' rules, free of any database: reading a cron expression in a time zone,
its next due time, and what a fire does when the service comes back after due times passed
(the missed-fire policy).

Missed-fire policy: when a schedule is looked at after one or more due times have passed, it
fires once, for the most recent of them, if that one is at most ``grace`` old; otherwise it
records that due time as `missed` and makes no job. Either way it then waits for the next due
time after now: a service that was down for a day does not catch up on every fire it missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

# Fields: minute hour day month weekday, and optionally seconds as a sixth (croniter's order).
_FIELD_COUNTS = (5, 6)
# A minimum interval is checked over this many consecutive due times.
_INTERVALS_CHECKED = 8


class FireOutcome(StrEnum):
    FIRED = "fired"  # jobs were made
    SKIPPED = "skipped"  # nothing to process at that time: no job
    MISSED = "missed"  # the service was down past the missed-fire grace: no job


def parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError if unknown."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown time zone '{name}'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, e.g. "Europe"
        raise ValueError(f"unknown time zone '{name}': use an IANA name such as 'Europe/Paris'") from None


def check_cron(expression: str, zone: ZoneInfo, *, min_interval: float) -> None:
    """ValueError unless ``expression`` is a cron expression of 5 fields (6 with seconds last, or
    an alias such as ``@hourly``) whose due times are at least ``min_interval`` seconds apart."""
    fields = expression.split()
    alias = len(fields) == 1 and expression.startswith("@")
    if not alias and len(fields) not in _FIELD_COUNTS:
        raise ValueError(
            f"cron expression '{expression}' has {len(fields)} fields: give 5 "
            "(minute hour day month weekday) or 6 (seconds last)"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"cron expression '{expression}' is not valid")
    try:
        _check_interval(expression, zone, min_interval)
    except ValueError as error:
        if str(error).startswith("cron expression"):
            raise
        raise ValueError(f"cron expression '{expression}' has no due time: {error}") from None


def _check_interval(expression: str, zone: ZoneInfo, min_interval: float) -> None:
    due = next_due(expression, zone, datetime.now(UTC))
    for _ in range(_INTERVALS_CHECKED):
        following = next_due(expression, zone, due)
        if (following - due).total_seconds() < min_interval:
            raise ValueError(
                f"cron expression '{expression}' fires more often than every {min_interval:g} s, "
                "the shortest interval allowed (WIPSVC_SCHEDULE_MIN_INTERVAL_SECONDS)"
            )
        due = following


def next_due(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first due time strictly after ``after``, in UTC (the expression read in ``zone``)."""
    start = after.astimezone(zone)
    found: datetime = croniter(expression, start).get_next(datetime)
    return found.astimezone(UTC)


def latest_due(expression: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The last due time at or before ``now``, in UTC."""
    found: datetime = croniter(expression, now.astimezone(zone)).get_prev(datetime)
    candidate = found.astimezone(UTC)
    following = next_due(expression, zone, candidate)
    return following if following <= now else candidate


@dataclass(frozen=True, slots=True)
class FirePlan:
    due_at: datetime  # the due time this fire is for (the most recent one passed)
    run: bool  # make jobs now (False: record it `missed`)
    next_at: datetime  # the schedule's next due time, after now


def plan_fire(
    expression: str, zone: ZoneInfo, stored_due: datetime, now: datetime, grace: timedelta
) -> FirePlan | None:
    """What to do at ``now`` for a schedule whose next due time is ``stored_due`` (None: not due)."""
    if stored_due > now:
        return None
    due = stored_due
    if next_due(expression, zone, stored_due) <= now:  # more than one passed: only the last counts
        due = max(stored_due, latest_due(expression, zone, now))
    return FirePlan(due_at=due, run=now - due <= grace, next_at=next_due(expression, zone, now))
