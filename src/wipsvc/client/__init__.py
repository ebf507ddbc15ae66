"""Client side of wipsvc: a REST client, a live job follower, and the CLI commands using them."""

from __future__ import annotations

from wipsvc.client.api import ApiClient, ApiError, ClientConfig, ClientError, ServiceUnreachable
from wipsvc.client.watch import WatchOptions, job_exit_code, watch_job

__all__ = [
    "ApiClient",
    "ApiError",
    "ClientConfig",
    "ClientError",
    "ServiceUnreachable",
    "WatchOptions",
    "job_exit_code",
    "watch_job",
]
