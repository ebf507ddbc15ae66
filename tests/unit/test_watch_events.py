"""The CLI reads `wip_job_progress` as the typed event, validated once where it arrives."""

from __future__ import annotations

from typing import Any

from wipsvc.client.watch import parse_event
from wipsvc.domain.events import CurrentProduct, JobProgress
from wipsvc.domain.statuses import EventPhase, EventStatus, JobStatus


def _event(**changes: Any) -> JobProgress:
    fields: dict[str, Any] = {
        "job_id": "j-1",
        "status": EventStatus.PROCESSING,
        "total": 3,
        "processed": 1,
        "successful": 0,
        "failed": 1,
        "current_product": CurrentProduct(
            wip_id=7, sku="ABC", success=False, row_num=2, error="no product data", error_step="extract"
        ),
        "collection_name": "sinks",
        "seq": 4,
        "eta_seconds": 12.5,
        "job_status": JobStatus.RUNNING,
        "timestamp": "2026-11-30T09:00:00.000Z",
    }
    return JobProgress(**(fields | changes))


def test_a_sent_payload_reads_back_as_the_event_that_made_it() -> None:
    for event in (_event(), _event(current_product=None, phase=EventPhase.PAUSED)):
        assert parse_event(event.payload()) == event


def test_fields_a_newer_server_adds_are_dropped_not_refused() -> None:
    payload = _event().payload() | {"priority": 5}
    assert parse_event(payload) == _event()


def test_what_is_not_an_event_is_ignored() -> None:
    assert parse_event(["not", "a", "dict"]) is None
    assert parse_event({"job_id": "j-1", "seq": "four"}) is None
    broken = _event().payload()
    broken["current_product"] = {"sku": "ABC"}  # no wip_id, success, row_num
    assert parse_event(broken) is None
