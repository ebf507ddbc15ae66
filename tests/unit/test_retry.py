"""The one retry policy: attempts, backoff, Retry-After, quota waits, giving up."""

from __future__ import annotations

import pytest

from tests.support.clocks import ManualClock
from wipsvc.adapters.retry_after import retry_after_seconds
from wipsvc.domain.errors import StepError
from wipsvc.pipeline.retry import Attempts, RetryPolicy, backoff_delay, with_retries


class Script:
    """An operation that raises the given errors in turn, then answers "done"; it records
    its calls and, like a quota bucket's pause, lets ``wait`` seconds pass on each throttled one."""

    def __init__(self, errors: list[StepError], clock: ManualClock, wait: float = 0.0) -> None:
        self.errors, self.clock, self.wait = list(errors), clock, wait
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            error = self.errors.pop(0)
            if error.throttled:
                self.clock.now += self.wait
            raise error
        return "done"


def _policy(clock: ManualClock, sleeps: list[float], **overrides: float) -> RetryPolicy:
    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        clock.now += delay

    return RetryPolicy(sleep=sleep, clock=clock, draw=lambda: 1.0, **overrides)  # type: ignore[arg-type]


TRANSIENT = StepError("HTTP 503", transient=True)
THROTTLED = StepError("429", throttled=True)


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    assert [backoff_delay(n, 1.0, 5.0, lambda: 1.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff_delay(3, 1.0, 5.0, lambda: 0.25) == 1.0


async def test_transient_errors_use_attempts_with_backoff_then_succeed() -> None:
    clock, sleeps = ManualClock(), list[float]()
    operation = Script([TRANSIENT, TRANSIENT], clock)
    attempts = Attempts()
    assert await with_retries(operation, _policy(clock, sleeps), "t", attempts=attempts) == "done"
    assert operation.calls == 3 and attempts.used == 2 and sleeps == [1.0, 2.0]


async def test_the_attempt_setting_bounds_the_calls() -> None:
    clock, sleeps = ManualClock(), list[float]()
    operation = Script([TRANSIENT] * 10, clock)
    with pytest.raises(StepError, match="HTTP 503"):
        await with_retries(operation, _policy(clock, sleeps, max_attempts=4), "t")
    assert operation.calls == 4 and len(sleeps) == 3


async def test_a_permanent_error_ends_at_once() -> None:
    clock, sleeps = ManualClock(), list[float]()
    operation = Script([StepError("404")], clock)
    with pytest.raises(StepError, match="404"):
        await with_retries(operation, _policy(clock, sleeps), "t")
    assert operation.calls == 1 and sleeps == []


async def test_retry_after_replaces_the_backoff_capped_at_the_longest_delay() -> None:
    clock, sleeps = ManualClock(), list[float]()
    errors = [
        StepError("503", transient=True, retry_after=7.0),
        StepError("503", transient=True, retry_after=99),
    ]
    await with_retries(Script(errors, clock), _policy(clock, sleeps, max_delay=30.0), "t")
    assert sleeps == [7.0, 30.0]


async def test_throttled_tries_wait_in_the_bucket_without_using_attempts() -> None:
    clock, sleeps = ManualClock(), list[float]()
    operation = Script([THROTTLED] * 6 + [TRANSIENT], clock, wait=10.0)
    attempts = Attempts()
    assert await with_retries(operation, _policy(clock, sleeps), "t", attempts=attempts) == "done"
    assert operation.calls == 8 and attempts.throttled == 6 and attempts.used == 1
    assert sleeps == [1.0]  # only the transient error backed off here; the 429s waited in the bucket


async def test_after_the_quota_wait_429s_use_attempts() -> None:
    clock, sleeps = ManualClock(), list[float]()
    operation = Script([THROTTLED] * 50, clock, wait=10.0)
    attempts = Attempts()
    with pytest.raises(StepError, match="429"):
        await with_retries(operation, _policy(clock, sleeps, quota_wait=25.0), "t", attempts=attempts)
    # 0 s, 10 s and 20 s into the wait: within it; from 30 s on each 429 is a try of 3.
    assert attempts.throttled == 3 and attempts.used == 3 and operation.calls == 6


async def test_give_up_stops_before_the_next_try() -> None:
    clock, sleeps = ManualClock(), list[float]()
    operation = Script([TRANSIENT, THROTTLED], clock)
    with pytest.raises(StepError):
        await with_retries(operation, _policy(clock, sleeps), "t", give_up=lambda: operation.calls >= 1)
    assert operation.calls == 1


def test_retry_after_headers_in_seconds_milliseconds_and_dates() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "-4"}) == 0.0
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after_seconds({"retry-after": date}, now=1445412470.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
