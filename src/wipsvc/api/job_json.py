"""A job's status as the route clients poll answers it: its results passed through as stored.

The store writes each product's result in exactly the shape of :class:`ProductResult` (the ledger's
``ItemRecord.result``, and ``wip_jobs.results`` made of them). Validating 1,000 of them into models
and then again as the response (FastAPI validates a returned model once more) cost a poll of a
large job ~20 ms of the event loop; a result in that exact shape is written out as it is. Anything
else (a row written by an older version, say) still goes through the model.
"""

from __future__ import annotations

from fastapi import Response
from pydantic_core import to_json

from wipsvc.api.schemas import Job, JobResponse, ProductResult
from wipsvc.services import Services
from wipsvc.store import JobRecord

_RESULT_FIELDS = frozenset(ProductResult.model_fields)


async def job_json_response(services: Services, job: JobRecord, view: Job) -> Response:
    """``job`` as a `JobResponse` body, from its ``view`` without results and its results."""
    results = await services.job_service.results(job)
    outer = JobResponse(job=view).model_dump(mode="json")
    outer["job"]["results"] = [
        result
        if result.keys() == _RESULT_FIELDS
        else ProductResult.model_validate(result).model_dump(mode="json")
        for result in results
    ]
    return Response(to_json(outer), media_type="application/json")
