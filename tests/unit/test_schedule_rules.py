"""Recurring schedules' rules: cron reading in a time zone, and the missed-fire policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wipsvc.domain.schedules import check_cron, latest_due, next_due, parse_zone, plan_fire

UTC_ZONE = parse_zone("UTC")
HOURLY = "0 * * * *"
GRACE = timedelta(minutes=10)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 6, 1, hour, minute, second, tzinfo=UTC)


def test_not_due_yet_is_no_fire() -> None:
    assert plan_fire(HOURLY, UTC_ZONE, at(10), at(9, 59, 59), GRACE) is None


def test_a_due_time_just_passed_fires_for_itself() -> None:
    plan = plan_fire(HOURLY, UTC_ZONE, at(10), at(10, 0, 1), GRACE)
    assert plan is not None
    assert (plan.due_at, plan.run, plan.next_at) == (at(10), True, at(11))


def test_down_past_several_due_times_fires_once_for_the_last_if_within_grace() -> None:
    # Down from before 10:00 until 13:05: 10, 11, 12 and 13 o'clock passed; only 13:00 runs.
    plan = plan_fire(HOURLY, UTC_ZONE, at(10), at(13, 5), GRACE)
    assert plan is not None
    assert (plan.due_at, plan.run, plan.next_at) == (at(13), True, at(14))


def test_a_due_time_older_than_the_grace_is_missed_not_run() -> None:
    plan = plan_fire(HOURLY, UTC_ZONE, at(10), at(13, 30), GRACE)
    assert plan is not None
    assert (plan.due_at, plan.run, plan.next_at) == (at(13), False, at(14))
    # The same lateness within a larger grace runs.
    later = plan_fire(HOURLY, UTC_ZONE, at(10), at(13, 30), timedelta(hours=1))
    assert later is not None and later.run


def test_exactly_on_a_due_time_counts_it_as_passed() -> None:
    assert latest_due(HOURLY, UTC_ZONE, at(12)) == at(12)
    plan = plan_fire(HOURLY, UTC_ZONE, at(11), at(12), GRACE)
    assert plan is not None and (plan.due_at, plan.next_at) == (at(12), at(13))


def test_the_cron_is_read_in_its_time_zone_across_a_dst_change() -> None:
    paris = parse_zone("Europe/Paris")
    # 06:00 in Paris is 05:00 UTC in winter, 04:00 UTC in summer (DST began on 29 March 2026).
    before = datetime(2026, 3, 28, 12, tzinfo=UTC)
    first = next_due("0 6 * * *", paris, before)
    assert first == datetime(2026, 3, 29, 4, tzinfo=UTC)
    assert next_due("0 6 * * *", paris, datetime(2026, 3, 27, 12, tzinfo=UTC)) == datetime(
        2026, 3, 28, 5, tzinfo=UTC
    )


def test_seconds_as_a_sixth_field() -> None:
    assert next_due("* * * * * */5", UTC_ZONE, at(10, 0, 1)) == at(10, 0, 5)


@pytest.mark.parametrize(
    "expression", ["", "* * * *", "61 * * * *", "* * * * * * *", "not a cron", "@sometimes", "0 0 31 2 *"]
)
def test_bad_cron_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="cron expression"):
        check_cron(expression, UTC_ZONE, min_interval=1)


def test_a_cron_more_frequent_than_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="more often"):
        check_cron("* * * * *", UTC_ZONE, min_interval=120)
    check_cron("*/2 * * * *", UTC_ZONE, min_interval=120)
    check_cron("@hourly", UTC_ZONE, min_interval=120)


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "Europe/", "Europe", "UTC\x00"]
)
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_zone(name)
