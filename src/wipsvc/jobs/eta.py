"""Remaining-time estimates from the rate at which products finish."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class EtaEstimator:
    """Estimates seconds left from recent completions.

    Uses the completion rate over a sliding window (so a job that speeds up or slows
    down is followed), measured from when this runner started (so a resumed job does
    not count time it spent dead). Unknown (None) until the first product finishes.
    """

    def __init__(self, remaining: int, clock: Callable[[], float], window: int = 20) -> None:
        self._remaining = remaining
        self._clock = clock
        self._started = clock()
        self._finished: deque[float] = deque(maxlen=window)
        self._count = 0

    def product_finished(self) -> None:
        self._remaining = max(0, self._remaining - 1)
        self._count += 1
        self._finished.append(self._clock())

    def estimate(self) -> float | None:
        if not self._finished:
            return None
        if self._remaining == 0:
            return 0.0
        if len(self._finished) == self._count:
            # Every completion is in the window: measure from the runner's start.
            span, done = self._finished[-1] - self._started, len(self._finished)
        else:
            span, done = self._finished[-1] - self._finished[0], len(self._finished) - 1
        if span <= 0 or done <= 0:
            return None
        return self._remaining * span / done
