"""A job's status as the route clients poll answers it: its results passed through as stored.

The store writes each product's result in exactly the shape of :class:`ProductResult` (the ledger's
``ItemRecord.result``, and ``wip_jobs.results`` made of them). Validating 1,000 of them into models
and then again as the response (FastAPI validates a returned model once more) cost a poll of a
large job ~20 ms of the event loop; a result in that exact shape is written out as it is. Anything
else (a row written by an older version, say) still goes through the model. An ended job's results
never change: their JSON is kept for the next poll, keyed by the stored text itself. A running
job's results are the JSON kept on its ledger rows, joined as they are (``item_result_json``), or
on the instance that runs it, as its runner last committed them (`wipsvc.jobs.live_status`).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from fastapi import Response
from pydantic_core import to_json

from wipsvc.api.schemas import Job, JobResponse, ProductResult
from wipsvc.domain.statuses import TERMINAL_JOB_STATUSES
from wipsvc.store import JobRecord

_RESULT_FIELDS = frozenset(ProductResult.model_fields)
# Stands for the results in the job's JSON until they are put in: no text of ours holds a NUL.
_MARK = f"\x00results-{uuid.uuid4().hex}"
_PLACEHOLDER = to_json(_MARK)


def job_json_response(job: JobRecord, view: Job, results_json: str) -> Response:
    """``job`` as a `JobResponse` body, from its ``view`` without results and its results (a
    running job's as joined from its ledger, an ended job's as stored with it)."""
    ended = job.status in TERMINAL_JOB_STATUSES
    results = _ended_results(results_json) if ended else results_json.encode()
    outer = JobResponse(job=view).model_dump(mode="json")
    outer["job"]["results"] = _MARK
    return Response(to_json(outer).replace(_PLACEHOLDER, results, 1), media_type="application/json")


@functools.lru_cache(maxsize=16)
def _ended_results(stored: str) -> bytes:
    return _results_json(JobRecord.parse_results(stored))


def _results_json(results: list[dict[str, Any]]) -> bytes:
    return to_json(
        [
            result
            if result.keys() == _RESULT_FIELDS
            else ProductResult.model_validate(result).model_dump(mode="json")
            for result in results
        ]
    )
