"""Plain records the store returns; nothing here talks to the database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import RowMapping

from wipsvc.collection import CollectionConfig
from wipsvc.domain.priority import Priority
from wipsvc.domain.statuses import ItemStatus, JobStatus, WipStatus


class StoreError(Exception):
    """Base of the errors the store raises for the caller to turn into answers."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class LeaseLost(StoreError):
    """This instance no longer owns the job (its lease expired and another took it)."""


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    name: str
    config: CollectionConfig
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> CollectionRecord:
        return cls(
            name=row["name"],
            config=CollectionConfig.model_validate(row["config"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class ProductRecord:
    wip_id: int
    collection_name: str
    sku: str
    url: str
    status: WipStatus
    row_num: int | None
    extracted: dict[str, Any] | None
    sources: dict[str, str] | None
    descriptions: dict[str, Any] | None
    error: str | None
    active_job_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> ProductRecord:
        return cls(
            wip_id=row["id"],
            collection_name=row["collection_name"],
            sku=row["sku"],
            url=row["url"],
            status=WipStatus(row["status"]),
            row_num=row["row_num"],
            extracted=row["extracted"],
            sources=row["sources"],
            descriptions=row["descriptions"],
            error=row["error"],
            active_job_id=row["active_job_id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    collection_name: str
    wip_ids: list[int]
    status: JobStatus
    total_products: int
    processed_products: int
    successful_products: int
    failed_products: int
    results_json: str  # ``results`` as stored: parsed only when asked for (1,000 results take ms)
    error: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    event_seq: int
    retry_of: str | None
    token_usage: dict[str, int] | None
    eta_seconds: float | None = None  # as of `eta_at`, the time of the job's latest event
    eta_at: datetime | None = None
    priority: Priority = Priority.NORMAL
    run_at: datetime | None = None  # when a `scheduled` job is queued
    schedule_id: int | None = None  # the recurring schedule that made the job

    @property
    def results(self) -> list[dict[str, Any]]:
        """The per-product results written when the job ended (`[]` before)."""
        return self.parse_results(self.results_json)

    @staticmethod
    def parse_results(stored: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = json.loads(stored)
        return results

    @classmethod
    def from_row(cls, row: RowMapping) -> JobRecord:
        return cls(
            job_id=row["job_id"],
            collection_name=row["collection_name"],
            wip_ids=json.loads(row["wip_ids"]),
            status=JobStatus(row["status"]),
            total_products=row["total_products"],
            processed_products=row["processed_products"],
            successful_products=row["successful_products"],
            failed_products=row["failed_products"],
            results_json=row["results"] or "[]",
            error=row["error"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            owner=row["owner"],
            lease_expires_at=row["lease_expires_at"],
            cancel_requested=bool(row["cancel_requested"]),
            event_seq=row["event_seq"],
            retry_of=row["retry_of"],
            token_usage=row["token_usage"],
            eta_seconds=row.get("eta_seconds"),
            eta_at=row.get("eta_at"),
            priority=Priority(row.get("priority") or Priority.NORMAL),
            run_at=row.get("run_at"),
            schedule_id=row.get("schedule_id"),
        )


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One product's entry in a job's ledger."""

    job_id: str
    wip_id: int
    position: int
    sku: str
    status: ItemStatus
    step: str | None
    row_num: int | None
    checkpoint: dict[str, Any]
    attempts: int
    error: str | None
    error_step: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None

    @classmethod
    def from_row(cls, row: RowMapping) -> ItemRecord:
        return cls(
            job_id=row["job_id"],
            wip_id=row["wip_id"],
            position=row["position"],
            sku=row["sku"],
            status=ItemStatus(row["status"]),
            step=row["step"],
            row_num=row["row_num"],
            checkpoint=dict(row["checkpoint"] or {}),
            attempts=row["attempts"],
            error=row["error"],
            error_step=row["error_step"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            duration=row["duration"],
        )

    def result(self) -> dict[str, Any]:
        """The item as an entry of the job's `results` (the seed's fields first)."""
        return item_result(
            {
                "wip_id": self.wip_id,
                "sku": self.sku,
                "row_num": self.row_num,
                "status": self.status.value,
                "duration": self.duration,
                "step": self.step,
                "error": self.error,
                "error_step": self.error_step,
                "attempts": self.attempts,
                "checkpoint": self.checkpoint,
            }
        )


# The ledger's columns a result is made of (see `item_result`).
RESULT_COLUMNS = (
    "wip_id",
    "sku",
    "row_num",
    "status",
    "duration",
    "step",
    "error",
    "error_step",
    "attempts",
    "checkpoint",
)


def item_result(row: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    """A ledger row (its `RESULT_COLUMNS` at least) as an entry of the job's `results`."""
    checkpoint = row["checkpoint"] or {}
    fields = (checkpoint.get("extracted") or {}).get("fields") or {}
    duration = row["duration"]
    return {
        "wip_id": row["wip_id"],
        "sku": row["sku"],
        "row_num": row["row_num"],
        "success": row["status"] == ItemStatus.SUCCEEDED.value,
        "extracted_fields": [name for name, value in fields.items() if value not in ("", [], None)],
        "duration": round(duration, 3) if duration is not None else None,
        "status": row["status"],
        "step": row["step"],
        "error": row["error"],
        "error_step": row["error_step"],
        "attempts": row["attempts"],
        "generator": (checkpoint.get("descriptions") or {}).get("generator"),
        "token_usage": checkpoint.get("token_usage"),
    }


def item_result_json(row: Mapping[str, Any] | RowMapping) -> str:
    """`item_result` as compact JSON, exactly as the status route writes a result out."""
    return to_json(item_result(row)).decode()


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """A stored `wip_job_progress` event: the seed's payload plus `collection_name`, `seq`, …"""

    job_id: str
    collection_name: str
    seq: int
    payload: dict[str, Any] = field(hash=False)
