"""The status a runner keeps of its job: as its batches committed it, and only while its lease is
certainly valid."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.clocks import ManualClock
from wipsvc.domain.statuses import JobStatus
from wipsvc.jobs.live_status import LiveStatus
from wipsvc.store import JobRecord, LeaseLost
from wipsvc.store.lease import Lease, LeaseGuard
from wipsvc.store.ledger_batch import Committed


def _job(**changed: Any) -> JobRecord:
    values: dict[str, Any] = {
        "job_id": "j",
        "collection_name": "sinks",
        "wip_ids": [3, 1, 2],
        "status": JobStatus.RUNNING,
        "total_products": 3,
        "processed_products": 0,
        "successful_products": 0,
        "failed_products": 0,
        "results_json": "[]",
        "error": None,
        "created_at": datetime(2026, 11, 30, tzinfo=UTC),
        "started_at": datetime(2026, 11, 30, tzinfo=UTC),
        "completed_at": None,
        "owner": "me",
        "lease_expires_at": None,
        "cancel_requested": False,
        "event_seq": 1,
        "retry_of": None,
        "token_usage": None,
    }
    return JobRecord(**{**values, **changed})


def _guard(clock: ManualClock) -> LeaseGuard:
    lease = Lease("j", "me", seconds=15, margin=3).renewed(sent_at=0.0)  # certain until 12
    return LeaseGuard(lease, clock=clock)


def _status(clock: ManualClock, results: dict[int, str] | None = None) -> LiveStatus:
    return LiveStatus(_job(), results or {}, _guard(clock).certainly_held)


def test_results_follow_the_jobs_order_whatever_order_products_finish_in() -> None:
    live = _status(ManualClock(), {2: '{"wip_id":2}'})  # finished before a takeover
    live.committed(Committed([], _job(processed_products=2), {1: '{"wip_id":1}'}))
    assert live.current() == (_job(processed_products=2), '[{"wip_id":1},{"wip_id":2}]')
    live.committed(Committed([], _job(processed_products=3), {3: '{"wip_id":3}'}))
    current = live.current()
    assert current is not None and current[1] == '[{"wip_id":3},{"wip_id":1},{"wip_id":2}]'


def test_a_cancel_learnt_is_kept_by_a_batch_committed_before_it() -> None:
    live = _status(ManualClock())
    live.cancel_requested()
    live.committed(Committed([], _job(processed_products=1), {}))  # its RETURNING predates the cancel
    current = live.current()
    assert current is not None
    assert current[0].cancel_requested and current[0].processed_products == 1


def test_nothing_is_answered_once_the_lease_is_not_certainly_valid() -> None:
    clock = ManualClock()
    live = _status(clock)
    clock.now = 11.9
    assert live.current() is not None
    clock.now = 12.0  # a paused owner, say: its successor's progress is in the database only
    assert live.current() is None


def test_nothing_is_answered_once_the_lease_is_lost() -> None:
    clock = ManualClock()
    guard = _guard(clock)
    live = LiveStatus(_job(), {}, guard.certainly_held)
    assert live.current() is not None
    guard.lose(LeaseLost("taken over"))
    assert live.current() is None
