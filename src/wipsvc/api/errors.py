"""One JSON error shape for every failure: `{"success": false, "error": {code, message, details}}`."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wipsvc.api.schemas import ErrorResponse
from wipsvc.store import Conflict, NotFound

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details


def error_response(status_code: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = {"success": False, "error": {"code": code, "message": message, "details": details}}
    return JSONResponse(jsonable_encoder(body), status_code=status_code)


# What each error status means, and an example answer; routes document only the ones they can give.
_ERRORS: dict[int, tuple[str, str, str, Any]] = {
    400: ("The body is not valid JSON.", "malformed_json", "request body is not valid JSON", None),
    401: (
        "No valid API key (sent only when keys exist, or when the request came from beyond loopback).",
        "unauthorized",
        "API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        None,
    ),
    403: (
        "Not allowed for this API key: it needs an admin key.",
        "operator_only",
        "only an admin key may change: sheet.spreadsheet_id",
        {"fields": ["sheet.spreadsheet_id"]},
    ),
    404: (
        "Not found, or outside the API key's collections (answered alike).",
        "not_found",
        "collection 'sinks' not found",
        None,
    ),
    409: (
        "Conflict with the current state.",
        "conflict",
        "products already in an active job: 3, 4",
        {"busy": {"3": "ce672290-f093-4801-b4a1-078f10ab0801"}},
    ),
    413: (
        "Request body larger than `WIPSVC_MAX_REQUEST_BYTES`.",
        "request_too_large",
        "request body too large: at most 1048576 bytes are accepted",
        {"max_bytes": 1048576},
    ),
    422: (
        "Invalid input: a path, query or body field fails validation.",
        "validation_error",
        "wip_ids: Field required",
        [{"type": "missing", "loc": ["body", "wip_ids"], "msg": "Field required"}],
    ),
    429: (
        "Too many jobs started by this API key (or client) lately; retry after `Retry-After` seconds.",
        "rate_limited",
        "too many jobs started: at most 30 per minute; retry in 2 s",
        {"retry_after": 2},
    ),
    503: ("The database does not answer.", "not_ready", "database unreachable: OSError", None),
}


def error_responses(
    *statuses: int, examples: dict[int, tuple[str, str]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route can give, each with the one error
    shape and an example; `examples` replaces an example's (code, message) for this route."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, code, message, details = _ERRORS[status]
        if examples and status in examples:
            code, message = examples[status]
            details = None
        example = {"success": False, "error": {"code": code, "message": message, "details": details}}
        entry: dict[str, Any] = {
            "model": ErrorResponse,
            "description": description,
            "content": {"application/json": {"example": example}},
        }
        if status == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before starting another job.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"description": '`Bearer realm="wipsvc"`', "schema": {"type": "string"}}
            }
        responses[status] = entry
    return responses


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts)


def _allowed_methods(request: Request) -> list[str]:
    # From the OpenAPI paths (built once): the router's own header names only the first
    # route whose path matches.
    methods: set[str] = set()
    path = request.url.path
    for template, operations in request.app.openapi()["paths"].items():
        parts = re.split(r"(\{[^}]+\})", template)  # "/api/{collection}/wip" -> literal and {param} parts
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        if re.fullmatch(pattern, path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, "conflict", str(exc), exc.details or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [dict(error) for error in exc.errors()]
        for error in errors:
            error.pop("ctx", None)  # may hold exception objects; the message says it all
            error.pop("input", None)  # never echo the request body (it may hold secrets)
        if any(error.get("type") == "json_invalid" for error in errors):
            return error_response(400, "malformed_json", "request body is not valid JSON", errors)
        return error_response(422, "validation_error", _validation_message(errors), errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "error"
        )
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error")
