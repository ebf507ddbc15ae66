from __future__ import annotations

from wipsvc.jobs.eta import EtaEstimator


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_unknown_until_a_product_finishes_then_falls_at_steady_speed() -> None:
    clock = Clock()
    eta = EtaEstimator(10, clock)
    assert eta.estimate() is None
    estimates: list[float] = []
    for _ in range(10):
        clock.now += 3.0
        eta.product_finished()
        estimate = eta.estimate()
        assert estimate is not None
        estimates.append(estimate)
    assert estimates[0] == 27.0  # 9 left at 3 s each
    assert estimates == sorted(estimates, reverse=True) and estimates[-1] == 0.0


def test_follows_a_change_of_speed_through_its_window() -> None:
    clock = Clock()
    eta = EtaEstimator(100, clock, window=5)
    for _ in range(10):
        clock.now += 10.0
        eta.product_finished()
    for _ in range(10):
        clock.now += 1.0
        eta.product_finished()
    assert eta.estimate() == 80.0  # 80 left at the new speed of 1 s each
