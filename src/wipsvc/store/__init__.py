"""Persistence: all SQL of the service lives in this package."""

from wipsvc.store.errors import describe_error, is_outage
from wipsvc.store.records import (
    CollectionRecord,
    Conflict,
    ItemRecord,
    JobRecord,
    LeaseLost,
    NotFound,
    ProductRecord,
    ProgressEvent,
    StoreError,
)
from wipsvc.store.repository import Store

__all__ = [
    "CollectionRecord",
    "Conflict",
    "ItemRecord",
    "JobRecord",
    "LeaseLost",
    "NotFound",
    "ProductRecord",
    "ProgressEvent",
    "Store",
    "StoreError",
    "describe_error",
    "is_outage",
]
