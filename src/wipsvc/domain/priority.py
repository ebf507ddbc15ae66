"""Job priority: ``urgent``, ``normal`` (the default) or ``low``, and how waiting raises it.

Priority orders everything that waits: queued jobs at claim time, and calls waiting for a quota
token. Ageing keeps it from starving anyone: a waiter's effective priority rises one class for
every ``ageing`` seconds it has waited, so a ``low`` waiter ranks as ``urgent`` after two
periods and from then on only the waiters that came before it can go first.
"""

from __future__ import annotations

import math
from enum import StrEnum

from wipsvc.domain.statuses import JobStatus


class Priority(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 goes first."""
        return _RANKS[self]


_RANKS = {Priority.URGENT: 0, Priority.NORMAL: 1, Priority.LOW: 2}
LOWEST_RANK = max(_RANKS.values())

# A job's priority may change while it waits to be claimed; a running job keeps its own.
PRIORITY_CHANGEABLE_STATUSES = frozenset({JobStatus.SCHEDULED, JobStatus.QUEUED})


def effective_rank(rank: int, waited: float, ageing: float | None) -> int:
    """``rank`` raised one class per ``ageing`` seconds waited (never above urgent); no ageing
    when ``ageing`` is None or not positive."""
    if ageing is None or ageing <= 0 or waited <= 0:
        return rank
    return max(0, rank - math.floor(waited / ageing))
