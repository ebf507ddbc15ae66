"""A step served a fixed number of products at once, as the ETA sees it from the outside.

The step's own measured time mixes two things: waiting for a free execution and being served.
Products are admitted in the order they reach the step (first in, first out), so the ``k``-th
product to arrive is admitted on arrival while fewer than ``capacity`` are ahead of it, and
otherwise when the ``(k - capacity)``-th product to leave the step leaves. From arrivals and
departures alone this tells which products are being served, since when, and which still wait;
and how long a service lasts, apart from the wait. A product that waited did its own preparation
in the step (a write before the call) while it waited, so its service after admission is shorter
than that of one admitted on arrival: the two are sampled apart.

When the resource tells when each product's call is admitted (``admitted``, from the quota
bucket that holds the cap), that replaces the inference: a product is served from then on, and
its service is the call alone, whatever it did in the step before.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class _Arrival:
    index: int  # the order in which it reached the step
    at: float
    admitted: float | None = None  # when its call was admitted, when the resource tells


def rest_of(samples: Iterable[float], spent: float, fallback: float) -> float:
    """Expected time left after ``spent`` seconds, from the samples that lasted longer, less
    ``spent`` (one already slower than the mean is likely among the slow ones, not about to
    finish); a tenth of ``fallback`` when none lasted that long."""
    longer = [sample for sample in samples if sample > spent]
    if not longer:
        return fallback * 0.1
    return sum(longer) / len(longer) - spent


class ServedQueue:
    """One such step of one job: who arrived, was admitted and left, and how long services took."""

    def __init__(self, capacity: int, window: int) -> None:
        self.capacity = max(1, capacity)
        self._arrivals: dict[Hashable, _Arrival] = {}
        self._count = 0
        self._departures: list[float] = []  # in time order (the clock is monotonic)
        self._direct: deque[float] = deque(maxlen=window)  # services of products admitted on arrival
        self._waited: deque[float] = deque(maxlen=window)  # from admission, of those that waited
        self._calls: deque[float] = deque(maxlen=window)  # from told admissions: the calls alone
        self._told = False  # admissions are told: nothing to infer

    def arrived(self, key: Hashable, now: float) -> None:
        if key not in self._arrivals:
            self._arrivals[key] = _Arrival(self._count, now)
            self._count += 1

    def admitted(self, key: Hashable, now: float) -> None:
        """Its call was admitted (again, if the call is retried: the last admission counts)."""
        arrival = self._arrivals.get(key)
        if arrival is not None:
            arrival.admitted = now
            self._told = True

    def departed(self, key: Hashable, now: float, *, served: bool = True) -> None:
        """It left the step: done (``served``), or failed or gone from the job (no sample)."""
        arrival = self._arrivals.pop(key, None)
        if arrival is None:
            return
        if arrival.admitted is not None and served:
            self._calls.append(now - arrival.admitted)
        admitted = self._inferred(arrival)
        if admitted is not None and served:
            (self._waited if admitted > arrival.at else self._direct).append(now - admitted)
        self._departures.append(now)

    def _admitted(self, arrival: _Arrival) -> float | None:
        """When it was admitted; None while it waits for a free execution."""
        if self._told:
            return arrival.admitted
        return self._inferred(arrival)

    def _inferred(self, arrival: _Arrival) -> float | None:
        ahead = arrival.index - self.capacity
        if ahead < 0:
            return arrival.at
        if ahead >= len(self._departures):
            return None
        return max(arrival.at, self._departures[ahead])

    def known(self) -> bool:
        return bool(self._calls or self._direct or self._waited)

    def _service(self, waited: bool) -> Sequence[float]:
        """Recent services of products admitted like this one. Until one product has been
        served after waiting, one that waited is taken to need the shortest direct service: the
        one whose preparation took least, which the waiting products did while they waited."""
        if self._told and self._calls:
            return self._calls
        if waited:
            return self._waited or [min(self._direct)]
        return self._direct or self._waited

    def mean_service(self, waited: bool) -> float:
        samples = self._service(waited)
        return sum(samples) / len(samples)

    def ends(self, coming: list[tuple[float, Hashable]], now: float) -> dict[Hashable, float]:
        """Seconds from ``now`` until each product in the step, or on its way to it (``coming``:
        seconds until it arrives), leaves the step."""
        ends: dict[Hashable, float] = {}
        servers: list[float] = []
        waiting: list[tuple[int, Hashable]] = []
        for key, arrival in self._arrivals.items():
            admitted = self._admitted(arrival)
            if admitted is None:
                waiting.append((arrival.index, key))
                continue
            waited = admitted > arrival.at or self._told
            end = rest_of(self._service(waited), now - admitted, self.mean_service(waited))
            servers.append(end)
            ends[key] = end
        servers = sorted(servers)[: self.capacity]  # more only if the order was not quite first come
        servers += [0.0] * (self.capacity - len(servers))
        heapq.heapify(servers)
        queue = [(0.0, key) for _, key in sorted(waiting, key=lambda pair: pair[0])]
        queue += sorted(coming, key=lambda pair: pair[0])
        for arrival_in, key in queue:
            free = heapq.heappop(servers)
            waits = free > arrival_in
            end = max(arrival_in, free) + self.mean_service(waits)
            heapq.heappush(servers, end)
            ends[key] = end
        return ends
