"""Counting requests against a quota window, as a rate limit sees them."""

from __future__ import annotations

from collections.abc import Iterable


def most_in_window(times: Iterable[float], window: float) -> int:
    """The most of ``times`` that fall in any ``window`` seconds (a window holds ``t`` with
    ``start <= t < start + window``): what a quota over that window would have counted at its busiest."""
    ordered, most, first = sorted(times), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most
