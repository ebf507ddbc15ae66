"""Request and response models of the notification endpoints."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wipsvc.notify import signing

JOB_ID_EXAMPLE = "ce672290-f093-4801-b4a1-078f10ab0801"
SECRET_MASK = "whsec_********"  # noqa: S105 - what stands for a secret, not one
EventName = Literal["job.completed", "job.failed", "job.cancelled", "product.failed"]
_JOB_ENDINGS: list[EventName] = ["job.completed", "job.failed", "job.cancelled"]
# One plain address: no display name, comma or line break (nothing to fold into other headers).
_EMAIL = re.compile(r"^[^@\s,<>\"]{1,64}@[A-Za-z0-9.-]{1,255}$")


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["webhook", "email"] = Field(description="Where to: a webhook or email recipients.")
    url: str | None = Field(
        None,
        max_length=2000,
        description="Webhooks: an https URL, or http for a host on WIPSVC_SCRAPE_ALLOWED_HOSTS.",
        examples=["https://hooks.example.com/wipsvc"],
    )
    recipients: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Email: the recipients' addresses.",
        examples=[["ops@example.com"]],
    )
    secret: str | None = Field(
        None,
        description="Webhooks: the Standard Webhooks signing secret (`whsec_` + base64 of 24-64 bytes); "
        "generated when omitted and shown once, in this request's answer.",
    )
    events: list[EventName] = Field(
        default_factory=lambda: list(_JOB_ENDINGS),
        min_length=1,
        description="What is sent: job endings by default; `product.failed` adds one per failed product.",
    )

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, recipients: list[str]) -> list[str]:
        for address in recipients:
            if not _EMAIL.match(address):
                raise ValueError(f"not an email address: {address[:80]!r}")
        return recipients

    @model_validator(mode="after")
    def _complete(self) -> TargetIn:
        if self.kind == "webhook":
            if not self.url or self.recipients:
                raise ValueError("a webhook target has a url and no recipients")
            if self.secret is not None:
                signing.secret_bytes(self.secret)  # its ValueError says what is wrong
        elif self.url or self.secret or not self.recipients:
            raise ValueError("an email target has recipients, and no url or secret")
        return self


class TargetsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: list[TargetIn] = Field(
        max_length=20, description="Every target of the collection (replaced whole)."
    )


class TargetOut(BaseModel):
    id: int = Field(description="The target's id, as in the delivery log.", examples=[1])
    kind: str = Field(description="`webhook` or `email`.", examples=["webhook"])
    url: str | None = Field(
        None, description="The webhook's URL.", examples=["https://hooks.example.com/wipsvc"]
    )
    recipients: list[str] = Field(default_factory=list, description="The email's recipients.")
    secret: str | None = Field(
        None,
        description="The webhook's signing secret: masked, except in the answer to the PUT that set it.",
        examples=[SECRET_MASK],
    )
    events: list[str] = Field(description="The events sent to this target.", examples=[_JOB_ENDINGS])


class TargetsResponse(BaseModel):
    success: bool = Field(True, description="Whether it succeeded.")
    targets: list[TargetOut] = Field(description="The collection's notification targets.")


class Attempt(BaseModel):
    at: str = Field(description="When the attempt ended (UTC).", examples=["2026-11-30T09:00:00.123456Z"])
    ok: bool = Field(description="Whether the receiver accepted it.")
    detail: str = Field(description="What the receiver answered, or why it failed.", examples=["HTTP 204"])


class DeliveryOut(BaseModel):
    id: int = Field(description="The delivery's id (for send again).", examples=[7])
    message_id: str = Field(
        description="The webhook's `webhook-id` and the email's Message-ID: the same for every attempt.",
        examples=[f"msg_{JOB_ID_EXAMPLE}.end.1"],
    )
    target_id: int = Field(description="The target it goes to.", examples=[1])
    job_id: str = Field(
        description="The job whose end (or failed product) it announces.", examples=[JOB_ID_EXAMPLE]
    )
    event: str = Field(description="`job.completed`, `job.failed`, `job.cancelled` or `product.failed`.")
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`pending` (due, or waiting to try again), `delivered`, or `failed` (attempts used up)."
    )
    attempts: list[Attempt] = Field(description="Every attempt, oldest first.")
    next_attempt_at: datetime | None = Field(description="When it is tried next, while pending.")
    created_at: datetime = Field(description="When the job's end owed it.")
    payload: dict[str, Any] = Field(
        description="What is sent: the webhook's JSON body (`type`, `timestamp`, `data`)."
    )


class DeliveriesResponse(BaseModel):
    success: bool = Field(True, description="Whether it succeeded.")
    deliveries: list[DeliveryOut] = Field(description="Newest first.")


class DeliveryResponse(BaseModel):
    success: bool = Field(True, description="Whether it succeeded.")
    delivery: DeliveryOut = Field(description="The delivery, pending again.")
