"""Leases for store-level tests that act as a job's owner."""

from __future__ import annotations

from wipsvc.store.lease import Lease


def lease_of(job_id: str, owner: str, seconds: float = 30.0) -> Lease:
    return Lease(job_id, owner, seconds=seconds, margin=5.0)
