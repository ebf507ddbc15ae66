"""The periodic loop shared by the schedule, re-run and history loops: a failing round is logged
under the loop's own module and the next round runs all the same; stop ends the task."""

from __future__ import annotations

import asyncio
import logging

import pytest

from wipsvc.jobs.background import PeriodicLoop


class FlakyRounds(PeriodicLoop):
    task_name = "test-flaky-rounds"
    failure_message = "flaky round failed; trying again"

    def __init__(self, failures: int) -> None:
        self.rounds = 0
        self._failures = failures
        self.third_round = asyncio.Event()

    async def _round(self) -> None:
        self.rounds += 1
        if self.rounds == 3:
            self.third_round.set()
        if self.rounds <= self._failures:
            raise RuntimeError(f"round {self.rounds} broke")

    def _pause_seconds(self) -> float:
        return 0.0


async def test_a_failing_round_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    loop = FlakyRounds(failures=2)
    with caplog.at_level(logging.ERROR):
        loop.start()
        await asyncio.wait_for(loop.third_round.wait(), 5)
        await loop.stop()
    failures = [r for r in caplog.records if r.getMessage() == "flaky round failed; trying again"]
    assert len(failures) == 2
    assert {r.name for r in failures} == {__name__}
    assert [str(r.exc_info[1]) for r in failures if r.exc_info] == ["round 1 broke", "round 2 broke"]


async def test_stop_ends_the_task_and_a_second_stop_is_harmless() -> None:
    loop = FlakyRounds(failures=0)
    loop.start()
    task = loop._task
    await asyncio.wait_for(loop.third_round.wait(), 5)
    await loop.stop()
    assert task is not None and task.cancelled()
    await loop.stop()
