"""Remaining-time estimates from per-step moving averages, the job's workers and the quota buckets."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from wipsvc.jobs.eta_queue import ServedQueue, rest_of

# Modelling costs time in proportion to the products in flight. With many in flight (a large job
# whose products all run at once, each asking for an estimate as it ends) the model is redone at
# most every ``_REMODEL_SECONDS`` and counted down in between, so that a job's ETAs cost it time in
# proportion to its products, not to their square.
_CHEAP_IN_FLIGHT = 64
_REMODEL_SECONDS = 0.25


@dataclass(slots=True)
class _Running:
    steps: list[str]  # the steps this product still has to do, in order
    mark: float  # when its current step began


class EtaEstimator:
    """Estimates seconds left for a job. Unknown (None) until the first product finishes.

    With step timings (the runner reports ``product_started``/``step_finished``) it models the
    job: each product in flight needs the moving averages of its remaining steps, less the time
    already spent in the current one; the products not started yet are spread over the job's
    ``workers``, each needing a whole product's time (plus ``gap``, the configured pause between
    products). A bucket pausing after a 429 (``paused_for``) holds every product in flight at least
    that long. Waiting for quota tokens is part of each step's measured time, so a quota that binds
    shows in the averages. A step served a fixed number of products at once (``queues``: Apps
    Script's concurrent executions) is modelled as its queue (:mod:`wipsvc.jobs.eta_queue`): who
    is being served since when, inferred from the order of arrivals and departures, and who still
    waits; its measured time, mostly waiting late in a job, would say the last ones are about
    done. Modelling the workers rather than the completion rate matters when products finish in
    waves: the last wave still takes a whole product's time.

    Without step timings it falls back to the completion rate over a sliding window (measured from
    when this runner started, so that a resumed job does not count time it spent dead).
    """

    def __init__(
        self,
        remaining: int,
        clock: Callable[[], float],
        window: int = 20,
        *,
        workers: int = 1,
        gap: float = 0.0,
        paused_for: Callable[[], float] | None = None,
        queues: dict[str, int] | None = None,
    ) -> None:
        self._remaining = remaining
        self._clock = clock
        self._window = window
        self._started = clock()
        self._finished: deque[float] = deque(maxlen=window)
        self._count = 0
        self._workers = max(1, workers)
        self._gap = gap
        self._paused_for = paused_for
        # step -> the products it serves at once (Apps Script: 30 executions per user).
        self._queues = {step: ServedQueue(capacity, window) for step, capacity in (queues or {}).items()}
        self._durations: dict[str, deque[float]] = {}
        self._all_steps: list[str] = []  # a whole product's steps, in order
        self._running: dict[Hashable, _Running] = {}
        self._last_model: tuple[float, float] | None = None  # when, and what the model said

    def product_started(self, key: Hashable, steps: Sequence[str]) -> None:
        """A product began; ``steps`` are those it still has to do (fewer when resumed)."""
        if len(steps) > len(self._all_steps):
            self._all_steps = list(steps)
        now = self._clock()
        self._running[key] = _Running(list(steps), now)
        if steps and steps[0] in self._queues:
            self._queues[steps[0]].arrived(key, now)

    def step_finished(self, key: Hashable, step: str) -> None:
        running = self._running.get(key)
        if running is None or step not in running.steps:
            return  # reported twice (a failed product saves its last checkpoint again)
        now = self._clock()
        self._durations.setdefault(step, deque(maxlen=self._window)).append(now - running.mark)
        running.steps.remove(step)
        running.mark = now
        if step in self._queues:
            self._queues[step].departed(key, now)
        if running.steps and running.steps[0] in self._queues:
            self._queues[running.steps[0]].arrived(key, now)

    def call_admitted(self, key: Hashable) -> None:
        """The product's call to a resource that serves a fixed number at once was admitted."""
        running = self._running.get(key)
        if running is not None and running.steps and running.steps[0] in self._queues:
            self._queues[running.steps[0]].admitted(key, self._clock())

    def product_finished(self, key: Hashable | None = None) -> None:
        self._remaining = max(0, self._remaining - 1)
        self._count += 1
        self._finished.append(self._clock())
        if key is not None:
            self._running.pop(key, None)
            for queue in self._queues.values():  # failed in or before the step: it waits no more
                queue.departed(key, self._clock(), served=False)

    def estimate(self) -> float | None:
        if not self._finished:
            return None
        if self._remaining == 0:
            return 0.0
        if len(self._running) > _CHEAP_IN_FLIGHT and self._last_model is not None:
            age = self._clock() - self._last_model[0]
            if age < _REMODEL_SECONDS:
                return max(0.0, self._last_model[1] - age)
        modelled = self._modelled()
        if modelled is None:
            return self._from_rate()
        self._last_model = (self._clock(), modelled)
        return modelled

    def _average(self, step: str) -> float | None:
        samples = self._durations.get(step)
        return sum(samples) / len(samples) if samples else None

    def _modelled(self) -> float | None:
        averages = {step: self._average(step) for step in self._all_steps}
        if not averages or any(value is None for value in averages.values()):
            return None
        mean = {step: value or 0.0 for step, value in averages.items()}
        per_product = self._gap + sum(mean.values())
        now = self._clock()
        pause = self._paused_for() if self._paused_for is not None else 0.0
        busy: list[float] = []
        queued = self._through_queues(mean, now) if self._queues else {}
        for key, running in self._running.items():
            if key in queued:
                busy.append(max(queued[key], pause))
                continue
            left = sum(mean.get(step, 0.0) for step in running.steps)
            if running.steps:
                # Time already spent in the current step counts, but a slow step is not over yet.
                step = running.steps[0]
                rest = rest_of(self._durations.get(step, ()), now - running.mark, mean.get(step, 0.0))
                left += rest - mean.get(step, 0.0)
            busy.append(max(left, pause))
        pending = max(0, self._remaining - len(busy))
        free_at = sorted(busy + [0.0] * max(0, self._workers - len(busy)))[: max(self._workers, 1)]
        # Equal products go round-robin to the workers in the order they become free.
        finish = [
            start + (pending // len(free_at) + (1 if index < pending % len(free_at) else 0)) * per_product
            for index, start in enumerate(free_at)
        ]
        return max([*finish, *busy])

    def _through_queues(self, mean: dict[str, float], now: float) -> dict[Hashable, float]:
        """Seconds until done for the running products that still need a step served a fixed
        number at a time: through the step's queue (see :mod:`wipsvc.jobs.eta_queue`), in the
        order they reach it, then the steps after it at their averages."""
        ends: dict[Hashable, float] = {}
        for step, queue in self._queues.items():
            if not queue.known() or step not in self._all_steps:
                continue
            after = sum(mean.get(name, 0.0) for name in self._all_steps[self._all_steps.index(step) + 1 :])
            coming: list[tuple[float, Hashable]] = []
            for key, running in self._running.items():
                if step not in running.steps or running.steps[0] == step:
                    continue
                index = running.steps.index(step)
                current = running.steps[0]
                before = sum(mean.get(name, 0.0) for name in running.steps[:index])
                rest = rest_of(self._durations.get(current, ()), now - running.mark, mean.get(current, 0.0))
                coming.append((max(0.0, before - mean.get(current, 0.0) + rest), key))
            for key, end in queue.ends(coming, now).items():
                if key in self._running:
                    ends[key] = end + after
        return ends

    def _from_rate(self) -> float | None:
        if len(self._finished) == self._count:
            # Every completion is in the window: measure from the runner's start.
            span, done = self._finished[-1] - self._started, len(self._finished)
        else:
            span, done = self._finished[-1] - self._finished[0], len(self._finished) - 1
        if span <= 0 or done <= 0:
            return None
        return self._remaining * span / done
