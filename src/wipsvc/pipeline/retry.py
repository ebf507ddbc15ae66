"""The one retry policy: how often, and after how long, a product's step (or a job's set-up) is
tried again.

Adapters do not loop. Each call makes one request and, when it fails, raises one classified
``StepError``: transient or permanent, with the server's ``Retry-After`` when it gave one, and
``throttled`` when a 429 has paused the call's quota bucket. Here:

- a permanent error ends the step at once;
- a transient one (a timeout, a 5xx, an unusable LLM answer) uses one of the step's
  ``max_attempts``; the next try follows after ``backoff_delay`` (or the ``Retry-After``);
- a throttled one does not use an attempt: the next try waits in the paused bucket, as every
  other call of that resource does. Only for ``quota_wait`` seconds per step, though: after
  that, 429s count as transient errors, so that a quota that never recovers still ends.

So the most requests one step makes to the LLM or to Google Sheets, whatever mix of transient
errors and unusable answers it meets, is ``max_attempts`` per call it makes (plus the tries
that waited out a quota pause).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from wipsvc.domain.errors import StepError

log = logging.getLogger(__name__)

T = TypeVar("T")


def backoff_delay(attempt: int, base: float, cap: float, draw: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter after the ``attempt``-th failed try (1-based):
    uniform in [0, min(cap, base * 2^(attempt-1)))."""
    return draw() * min(cap, base * 2.0 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    quota_wait: float = 300.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    draw: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before the next try: the server's ``Retry-After`` when it gave one (capped
        at ``max_delay``), the backoff otherwise."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return backoff_delay(attempt, self.base_delay, self.max_delay, self.draw)


class Attempts:
    """The tries of one step so far, as the policy counts them."""

    def __init__(self) -> None:
        self.used = 0  # tries that ended in a transient error, and the last one
        self.throttled = 0  # tries that waited out a quota pause instead


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    what: str,
    *,
    give_up: Callable[[], bool] = lambda: False,
    attempts: Attempts | None = None,
) -> T:
    """Run ``operation`` under ``policy``; re-raises the last ``StepError`` when it ends the step.
    ``give_up`` is asked before each retry (e.g. whether the job was cancelled meanwhile)."""
    counted = attempts if attempts is not None else Attempts()
    quota_deadline: float | None = None
    while True:
        try:
            return await operation()
        except StepError as error:
            if error.throttled and error.transient:
                now = policy.clock()
                if quota_deadline is None:
                    quota_deadline = now + policy.quota_wait
                if now < quota_deadline and not give_up():
                    counted.throttled += 1
                    log.info("%s waits for its quota: %s", what, error.message)
                    continue  # the bucket holds the next try until its pause ends
            counted.used += 1
            if not error.transient or counted.used >= policy.max_attempts or give_up():
                raise
            log.info("retrying %s after transient error: %s", what, error.message)
            await policy.sleep(policy.delay(counted.used, error.retry_after))
            if give_up():
                raise
