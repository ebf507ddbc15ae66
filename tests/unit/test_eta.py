from __future__ import annotations

import itertools

import pytest

from tests.support.clocks import ManualClock
from wipsvc.jobs.eta import EtaEstimator


def test_unknown_until_a_product_finishes_then_falls_at_steady_speed() -> None:
    clock = ManualClock()
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
    clock = ManualClock()
    eta = EtaEstimator(100, clock, window=5)
    for _ in range(10):
        clock.now += 10.0
        eta.product_finished()
    for _ in range(10):
        clock.now += 1.0
        eta.product_finished()
    assert eta.estimate() == 80.0  # 80 left at the new speed of 1 s each


STEPS = [("sheet_row", 1.0), ("extract", 7.0), ("describe", 6.0), ("clean", 3.3), ("complete", 0.5)]


def run_job(
    eta: EtaEstimator, clock: ManualClock, products: int, workers: int, gap: float = 0.0
) -> list[tuple[float, float]]:
    """Feed the estimator a job at steady speed; (estimate, true remaining) at each completion."""
    events: list[tuple[float, str, int, str]] = []
    free = [0.0] * workers
    for product in range(products):
        worker = product % workers
        t = free[worker] + (gap if product >= workers else 0.0)
        events.append((t, "start", product, ""))
        for name, seconds in STEPS:
            t += seconds
            events.append((t, "step", product, name))
        events.append((t, "finish", product, ""))
        free[worker] = t
    events.sort(key=lambda event: event[0])  # stable: a product's start follows the finish before it
    end = events[-1][0]
    seen: list[tuple[float, float]] = []
    for t, kind, product, step in events:
        clock.now = t
        if kind == "start":
            eta.product_started(product, [name for name, _ in STEPS])
        elif kind == "step":
            eta.step_finished(product, step)
        else:
            eta.product_finished(product)
            estimate = eta.estimate()
            assert estimate is not None
            seen.append((estimate, end - t))
    return seen


def test_step_model_falls_at_steady_speed_and_tracks_the_remaining_time() -> None:
    clock = ManualClock()
    eta = EtaEstimator(40, clock, workers=4)
    assert eta.estimate() is None
    seen = run_job(eta, clock, 40, workers=4)
    estimates = [estimate for estimate, _ in seen]
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(estimates))
    assert estimates[-1] == 0.0
    for estimate, actual in seen[:-1]:
        # Products finish in waves of 4: the completion rate alone would be off by a whole
        # product's time near the end; the worker model is not.
        assert estimate == pytest.approx(actual, rel=0.01, abs=0.1)


def test_partial_last_wave_still_takes_a_whole_product() -> None:
    clock = ManualClock()
    eta = EtaEstimator(18, clock, workers=8)  # waves of 8, 8, then 2
    seen = run_job(eta, clock, 18, workers=8)
    for estimate, actual in seen[:-1]:
        assert estimate == pytest.approx(actual, rel=0.01, abs=0.1)


def test_the_pause_between_products_of_the_original_design_counts() -> None:
    clock = ManualClock()
    eta = EtaEstimator(5, clock, workers=1, gap=20.0)
    seen = run_job(eta, clock, 5, workers=1, gap=20.0)
    assert seen[0][0] == pytest.approx(4 * (20.0 + 17.8))
    for estimate, actual in seen:
        assert estimate == pytest.approx(actual, abs=0.01)


def test_a_paused_quota_bucket_holds_the_products_in_flight() -> None:
    clock = ManualClock()
    pause = {"seconds": 0.0}
    eta = EtaEstimator(3, clock, workers=2, paused_for=lambda: pause["seconds"])
    eta.product_started("a", [name for name, _ in STEPS])
    eta.product_started("b", [name for name, _ in STEPS])
    for name, seconds in STEPS:
        clock.now += seconds
        eta.step_finished("a", name)
    eta.product_finished("a")
    eta.product_started("c", [name for name, _ in STEPS])
    calm = eta.estimate()
    pause["seconds"] = 60.0
    paused = eta.estimate()
    assert calm is not None and paused is not None
    assert calm == pytest.approx(17.8) and paused == pytest.approx(60.0)


def test_a_resumed_product_needs_only_its_remaining_steps() -> None:
    clock = ManualClock()
    eta = EtaEstimator(2, clock, workers=2)
    eta.product_started("fresh", [name for name, _ in STEPS])
    eta.product_started("resumed", ["clean", "complete"])
    for name, seconds in STEPS:
        clock.now += seconds
        eta.step_finished("fresh", name)
    eta.product_finished("fresh")
    # "resumed" started its clean step 17.8 s ago; the average clean + complete is 3.8 s: it is
    # late, so a tenth of its current step is taken to be left, plus its last step.
    assert eta.estimate() == pytest.approx(0.33 + 0.5)


def test_a_step_served_a_few_at_a_time_is_modelled_as_a_queue() -> None:
    """Eight products reach a step that serves 2 at a time (Apps Script's cap, scaled down),
    taking 3 s each unqueued: the last ones are 4 rounds away, not one step's average."""

    def run(queues: dict[str, int] | None) -> float:
        clock = ManualClock()
        eta = EtaEstimator(9, clock, workers=9, queues=queues)
        for key in range(9):
            eta.product_started(key, ["prepare", "clean"])
        clock.now = 1.0
        for key in range(9):
            eta.step_finished(key, "prepare")  # all nine wait for the step at once
        clock.now = 4.0
        eta.step_finished(0, "clean")  # the first went straight through: 3 s
        eta.product_finished(0)
        estimate = eta.estimate()
        assert estimate is not None
        return estimate

    # Without the queue: every product in the step "about done" by the one sample.
    assert run(None) <= 3.0
    # With it: product 2 was admitted when product 0 left (t=4), product 1 is about done (0.3 s);
    # the six still waiting follow two at a time, 3 s each, the last admitted at t=13: 12 s left.
    assert run({"clean": 2}) == pytest.approx(12.0)


def served_two_at_a_time(
    eta: EtaEstimator, clock: ManualClock, finish: list[tuple[float, int]]
) -> list[float]:
    """Five products reach a step served 2 at a time at t=0; ``finish``: (when, product) they
    leave it, each leaving the job then. The estimates after each departure."""
    for key in range(5):
        eta.product_started(key, ["clean"])
    estimates = []
    for at, key in finish:
        clock.now = at
        eta.step_finished(key, "clean")
        eta.product_finished(key)
        estimate = eta.estimate()
        assert estimate is not None
        estimates.append(estimate)
    return estimates


def test_a_waiting_product_is_served_from_its_admission_not_its_arrival() -> None:
    """The step prepares for 0.5 s (a write) and then waits for one of 2 executions of 3 s. A
    product that waited prepared while waiting: 3 s from its admission, which is when the one
    two places ahead of it left. The time measured in the step (up to 9.5 s here, mostly
    waiting) says nothing about how long the last one's execution still takes."""
    clock = ManualClock()
    eta = EtaEstimator(5, clock, workers=5, queues={"clean": 2})
    departures = [(3.5, 0), (3.5, 1), (6.5, 2), (6.5, 3)]
    estimates = served_two_at_a_time(eta, clock, departures)
    # At 3.5 s products 2 and 3 have just been admitted; nothing has been served after waiting
    # yet, so a whole 3.5 s service is assumed for them and for 4 after them: 7 s, 1 s too long.
    assert estimates[1] == pytest.approx(7.0)
    # At 6.5 s product 4 has just been admitted and is served like 2 and 3 were: 3 s.
    assert estimates[3] == pytest.approx(3.0)
    clock.now = 8.0
    assert eta.estimate() == pytest.approx(1.5)  # modelled again: half of its service done


def test_a_product_that_fails_in_the_queue_frees_its_place_without_a_sample() -> None:
    clock = ManualClock()
    eta = EtaEstimator(5, clock, workers=5, queues={"clean": 2})
    estimates = served_two_at_a_time(eta, clock, [(3.5, 0), (3.5, 1)])
    assert estimates[-1] == pytest.approx(7.0)  # 2 and 3 from 3.5 s, then 4: 3.5 s each
    clock.now = 4.0
    eta.product_finished(2)  # failed in the step: no step_finished, no sample of 0.5 s
    # Product 4 takes 2's place from now; 3 was admitted at 3.5 s: both need a whole service.
    assert eta.estimate() == pytest.approx(3.5)


def _first_product_finished(
    *, products: int, in_flight: int
) -> tuple[EtaEstimator, ManualClock, float | None]:
    """``in_flight`` of a job's ``products`` started at 0 s and the first finished at 2 s: the
    estimator, its clock and the estimate then."""
    clock = ManualClock(0.0)
    eta = EtaEstimator(products, clock, workers=in_flight)
    for product in range(in_flight):
        eta.product_started(product, ["extract"])
    clock.now = 2.0
    eta.step_finished(0, "extract")
    eta.product_finished(0)
    return eta, clock, eta.estimate()


def test_with_many_products_in_flight_the_model_is_redone_a_few_times_a_second() -> None:
    eta, clock, first = _first_product_finished(products=300, in_flight=300)
    assert first is not None and first > 0
    # A tenth of a second and nine products later the estimate only counts down: the model costs
    # time in proportion to the products in flight, and a large job asks at every product's end.
    clock.now = 2.1
    for product in range(1, 10):
        eta.step_finished(product, "extract")
        eta.product_finished(product)
    assert eta.estimate() == pytest.approx(first - 0.1)
    clock.now = 2.5
    assert eta.estimate() != pytest.approx(first - 0.5)  # modelled afresh


def test_with_few_products_in_flight_every_estimate_is_modelled_afresh() -> None:
    eta, clock, first = _first_product_finished(products=30, in_flight=10)
    clock.now = 2.1
    eta.step_finished(1, "extract")
    eta.product_finished(1)
    assert first is not None and eta.estimate() != pytest.approx(first - 0.1)


def test_before_any_product_waited_a_waiting_one_needs_the_shortest_direct_service() -> None:
    """The first two were admitted on arrival and prepared for 0.5 s and 1 s before their 3 s
    execution; the others prepared while waiting. With no service after a wait measured yet,
    the shortest direct one (3.5 s) stands for theirs, not the mean (3.75 s)."""
    clock = ManualClock()
    eta = EtaEstimator(5, clock, workers=5, queues={"clean": 2})
    estimates = served_two_at_a_time(eta, clock, [(3.5, 0), (4.0, 1)])
    # 2 admitted at 3.5 s, 3 at 4 s, 4 when 2 leaves at 7 s: it leaves at 10.5 s.
    assert estimates[-1] == pytest.approx(6.5)


def test_admissions_told_by_the_resource_replace_the_inference() -> None:
    """As in the test above, but the resource tells when each call got an execution: the two
    admitted on arrival prepared for 0.5 s first, so a call takes 3 s, not the 3.5 s the step
    took them; products 2 and 3, admitted at 3.5 s, end at 6.5 s and 4 at 9.5 s."""

    def estimate_at_3_5(told: bool) -> float:
        clock = ManualClock()
        eta = EtaEstimator(5, clock, workers=5, queues={"clean": 2})
        for key in range(5):
            eta.product_started(key, ["clean"])
        clock.now = 0.5
        for key in (0, 1):
            if told:
                eta.call_admitted(key)
        clock.now = 3.5
        for key in (0, 1):
            eta.step_finished(key, "clean")
            eta.product_finished(key)
        for key in (2, 3):
            if told:
                eta.call_admitted(key)
        estimate = eta.estimate()
        assert estimate is not None
        return estimate

    assert estimate_at_3_5(told=False) == pytest.approx(7.0)  # the step's 3.5 s, inferred
    assert estimate_at_3_5(told=True) == pytest.approx(6.0)
