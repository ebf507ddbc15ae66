"""The public `wip_job_progress` event, as one typed model: the store builds every stored event
through it, Socket.IO sends its payload, and ``docs/asyncapi.json`` documents it (generated from
this model by ``scripts/update_asyncapi.py``). The JSON shape is the seed's, unchanged: the seed's
fields first, then ``collection_name``, ``seq``, ``eta_seconds``, ``job_status``, ``timestamp``,
and ``phase`` only on an event that says the job changed hands."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from wipsvc.domain.statuses import EventPhase, EventStatus, JobStatus

EVENT_NAME = "wip_job_progress"

# A job's status as progress events carry it: the seed's values. A `scheduled` job sends no
# progress event (it has `wip_job_scheduled`), so the schema does not list that status.
ProgressJobStatus = Annotated[
    JobStatus,
    WithJsonSchema({"type": "string", "enum": [s.value for s in JobStatus if s is not JobStatus.SCHEDULED]}),
]


class CurrentProduct(BaseModel):
    """The product an event is about; ``error`` and ``error_step`` only when it failed."""

    model_config = ConfigDict(extra="forbid")

    wip_id: int
    sku: str
    success: bool
    row_num: int | None
    error: str | None = Field(default=None, description="Why the product failed (failed products only).")
    error_step: str | None = Field(default=None, description="The step it failed at (failed products only).")


class JobProgress(BaseModel):
    """One `wip_job_progress` event."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    status: EventStatus
    total: int
    processed: int
    successful: int
    failed: int
    current_product: CurrentProduct | None
    collection_name: str
    seq: int = Field(description="Gapless per job, from 1: ask for what you missed with `subscribe`.")
    eta_seconds: float | None = Field(description="Seconds left, estimated; 0 at the end, null if unknown.")
    job_status: ProgressJobStatus
    timestamp: str = Field(description="When the event was stored (ISO 8601, UTC, `Z`).")
    phase: EventPhase | None = Field(
        default=None, description="On a `processing` event naming no product: the job was paused or resumed."
    )

    def payload(self) -> dict[str, Any]:
        """The event as sent and stored: ``phase`` and a product's error fields only when set."""
        data = self.model_dump(mode="json", exclude={"phase", "current_product"})
        if self.current_product is not None:
            product = self.current_product.model_dump(mode="json")
            if self.current_product.error is None:
                product.pop("error")
                product.pop("error_step")
            data["current_product"] = product
        else:
            data["current_product"] = None
        if self.phase is not None:
            data["phase"] = self.phase.value
        return _in_contract_order(data)


_ORDER = [*JobProgress.model_fields]


def _in_contract_order(data: dict[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in _ORDER if name in data}


SCHEDULED_EVENT_NAME = "wip_job_scheduled"


class JobScheduled(BaseModel):
    """One `wip_job_scheduled` event: a job was given a `run_at` and waits, `scheduled`, until
    then (its `wip_job_progress` events start once it is queued). Sent live, not stored."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    collection_name: str
    total: int = Field(description="Products in the job.")
    run_at: str = Field(description="When the job is queued (ISO 8601, UTC, `Z`).")
    job_status: JobStatus = Field(description="Always `scheduled` when sent.")
    timestamp: str = Field(description="When the job was scheduled (ISO 8601, UTC, `Z`).")

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
