"""Statuses of jobs, of products within a job, and of WIP products; transitions live here."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"  # given a `run_at`: queued at that time (only such jobs take it)
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"  # a fatal job-level error only; failed products leave a job completed
    CANCELLED = "cancelled"


TERMINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_JOB_STATUSES = frozenset({JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING})
# Not started yet: cancelling one ends it at once.
WAITING_JOB_STATUSES = frozenset({JobStatus.SCHEDULED, JobStatus.QUEUED})


class ItemStatus(StrEnum):
    """A product's state within one job (the ledger)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # never started because the job was cancelled or failed


TERMINAL_ITEM_STATUSES = frozenset({ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.SKIPPED})


class WipStatus(StrEnum):
    """A WIP product's own status, independent of any job."""

    PENDING = "pending"
    EXTRACTING = "extracting"
    GENERATING = "generating"
    CLEANING = "cleaning"
    READY = "ready"
    ERROR = "error"


class Step(StrEnum):
    """The five steps of the pipeline, in order."""

    SHEET_ROW = "sheet_row"
    EXTRACT = "extract"
    DESCRIBE = "describe"
    CLEAN = "clean"
    COMPLETE = "complete"


STEP_ORDER: tuple[Step, ...] = tuple(Step)


class EventStatus(StrEnum):
    """`status` of a `wip_job_progress` event."""

    STARTED = "started"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventPhase(StrEnum):
    """`phase` of a `processing` event that names no product: the job changed hands."""

    PAUSED = "paused"  # its instance shut down; the job waits, running, for the next one
    RESUMED = "resumed"  # an instance took it over and goes on from its checkpoints


EVENT_STATUS_FOR_TERMINAL: dict[JobStatus, EventStatus] = {
    JobStatus.COMPLETED: EventStatus.COMPLETED,
    JobStatus.FAILED: EventStatus.FAILED,
    JobStatus.CANCELLED: EventStatus.CANCELLED,
}
