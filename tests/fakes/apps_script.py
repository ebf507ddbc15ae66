"""A fake Apps Script: the Apps Script API ``scripts.run`` and a deployed web app, over real HTTP.

``with FakeAppsScript() as fake:`` serves (``fake.url``, ``fake.webapp_url``) a Starlette app with

* ``POST /v1/scripts/{scriptId}:run`` — bearer check, then the Operation answer of the real API:
  ``{"done": true, "response": {…ExecutionResponse, "result": …}}`` or, for a scripted failure or an
  unknown function, ``{"done": true, "error": {"code": 3, "message": "ScriptError", "details":
  [{…ExecutionError, "errorMessage", "errorType", "scriptStackTraceElements"}]}}``;
* ``POST /macros/s/{deploymentId}/exec`` — like ``doPost(e)`` behind Google's front end: it checks
  the shared secret in the JSON body and answers 302 to ``/macros/echo?user_content_key=…`` on the
  same server, whose ``GET`` returns ``{"ok": true}`` or ``{"ok": false, "error": "…"}``; ``GET`` on
  the exec URL answers like a script without ``doGet``.

Failures are scripted per SKU (:meth:`fail_sku`), for the next N calls (:meth:`fail_next`), or as
HTTP errors (:meth:`http_error_next`); ``latency`` delays every answer.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.server import ServedFake, ThreadedServer

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ScriptFailure:
    message: str = "TypeError: Cannot read properties of undefined (reading 'trim')"
    error_type: str = "ScriptError"
    function: str | None = "cleanRow"  # None: no stack trace (e.g. "Script function not found")
    line: int = 12
    code: int = 3  # 3 = INVALID_ARGUMENT (a thrown exception), 10 = SCRIPT_TIMEOUT, 1 = CANCELLED


@dataclass(slots=True)
class ApiCall:
    script_id: str
    function: str
    parameters: list[Any]
    dev_mode: bool
    authorization: str | None


@dataclass(slots=True)
class WebAppCall:
    deployment_id: str
    body: JSON
    secret_ok: bool


@dataclass
class FakeAppsScript(ServedFake):
    script_id: str = "script-abc"
    deployment_id: str = "deploy-xyz"
    secret: str = "webapp-secret"
    functions: set[str] = field(default_factory=lambda: {"cleanRow"})
    # None = any non-empty bearer token is accepted; else e.g. ``FakeGoogleOAuth.is_valid``.
    token_validator: Callable[[str], bool] | None = None
    latency: float = 0.0
    api_calls: list[ApiCall] = field(default_factory=list)
    webapp_calls: list[WebAppCall] = field(default_factory=list)
    echo_fetches: int = 0
    _sku_failures: dict[str, ScriptFailure] = field(default_factory=dict)
    _next_failures: deque[ScriptFailure] = field(default_factory=deque)
    _next_http_errors: deque[int] = field(default_factory=deque)
    _echo: dict[str, JSON] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/v1/scripts/{script_id}:run", self._run, methods=["POST"]),
                Route("/macros/s/{deployment_id}/exec", self._exec, methods=["GET", "POST"]),
                Route("/macros/echo", self._echo_get, methods=["GET"]),
            ]
        )
        self._server = ThreadedServer(self.app)

    # -- lifecycle --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, to use as ``apps_script_api_url``."""
        return self._server.url

    @property
    def webapp_url(self) -> str:
        return f"{self._server.url}/macros/s/{self.deployment_id}/exec"

    # -- steering ---------------------------------------------------------------------------------------
    def fail_sku(self, sku: str, failure: ScriptFailure | None = None) -> None:
        with self._lock:
            self._sku_failures[sku] = failure or ScriptFailure()

    def fail_next(self, n: int = 1, failure: ScriptFailure | None = None) -> None:
        with self._lock:
            self._next_failures.extend([failure or ScriptFailure()] * n)

    def http_error_next(self, status: int, n: int = 1) -> None:
        """The next ``n`` requests (API or web app) get HTTP ``status`` (e.g. 429, 500)."""
        with self._lock:
            self._next_http_errors.extend([status] * n)

    # -- the script's "logic" ---------------------------------------------------------------------------
    def _outcome(self, sku: str) -> ScriptFailure | None:
        with self._lock:
            if self._next_failures:
                return self._next_failures.popleft()
            return self._sku_failures.get(sku)

    async def _pre(self) -> Response | None:
        if self.latency:
            await asyncio.sleep(self.latency)
        with self._lock:
            status = self._next_http_errors.popleft() if self._next_http_errors else None
        if status is None:
            return None
        google_status = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}.get(
            status, "UNKNOWN"
        )
        body = {"error": {"code": status, "message": f"Scripted HTTP {status}", "status": google_status}}
        return JSONResponse(body, status_code=status)

    # -- Apps Script API --------------------------------------------------------------------------------
    async def _run(self, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        token = (authorization or "").removeprefix("Bearer ").strip()
        ok_token = bool(token) and (self.token_validator is None or self.token_validator(token))
        if not authorization or not authorization.startswith("Bearer ") or not ok_token:
            return JSONResponse(
                {
                    "error": {
                        "code": 401,
                        "message": "Request had invalid authentication credentials. Expected OAuth 2 access "
                        "token, login cookie or other valid authentication credential.",
                        "status": "UNAUTHENTICATED",
                    }
                },
                status_code=401,
            )
        script_id = request.path_params["script_id"]
        body: JSON = await request.json()
        call = ApiCall(
            script_id=script_id,
            function=str(body.get("function", "")),
            parameters=list(body.get("parameters", [])),
            dev_mode=bool(body.get("devMode", False)),
            authorization=authorization,
        )
        with self._lock:
            self.api_calls.append(call)
        if script_id != self.script_id:
            body404 = {
                "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
            }
            return JSONResponse(body404, status_code=404)
        if (early := await self._pre()) is not None:
            return early
        if call.function not in self.functions:
            return JSONResponse(
                _execution_error(ScriptFailure(f"Script function not found: {call.function}", function=None))
            )
        sku = str(call.parameters[2]) if len(call.parameters) > 2 else ""
        failure = self._outcome(sku)
        if failure is not None:
            return JSONResponse(_execution_error(failure))
        result = {"cleaned": True, "sheet": call.parameters[:1], "row": call.parameters[1:2]}
        return JSONResponse(
            {
                "done": True,
                "response": {
                    "@type": "type.googleapis.com/google.apps.script.v1.ExecutionResponse",
                    "result": result,
                },
            }
        )

    # -- web app ----------------------------------------------------------------------------------------
    async def _exec(self, request: Request) -> Response:
        if request.path_params["deployment_id"] != self.deployment_id:
            return HTMLResponse("<html><body>Sorry, unable to open the file at this time.</body></html>", 404)
        if request.method == "GET":
            return HTMLResponse("<html><body>Script function not found: doGet</body></html>")
        if (early := await self._pre()) is not None:
            return early
        try:
            body = await request.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        secret_ok = body.get("secret") == self.secret
        with self._lock:
            self.webapp_calls.append(WebAppCall(request.path_params["deployment_id"], body, secret_ok))
        answer: JSON
        if not secret_ok:
            answer = {"ok": False, "error": "unauthorized: bad secret"}
        else:
            failure = self._outcome(str(body.get("sku", "")))
            answer = {"ok": True} if failure is None else {"ok": False, "error": failure.message}
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._echo[key] = answer
        # Google answers doPost with a redirect to the rendered output, to be fetched with GET.
        return RedirectResponse(f"{request.base_url}macros/echo?user_content_key={key}", status_code=302)

    async def _echo_get(self, request: Request) -> Response:
        with self._lock:
            self.echo_fetches += 1
            answer = self._echo.get(request.query_params.get("user_content_key", ""))
        if answer is None:
            return HTMLResponse(
                "<html><body>Sorry, the file you have requested does not exist.</body></html>", 404
            )
        return JSONResponse(answer)


def _execution_error(failure: ScriptFailure) -> JSON:
    return {
        "done": True,
        "error": {
            "code": failure.code,
            "message": failure.error_type,
            "details": [
                {
                    "@type": "type.googleapis.com/google.apps.script.v1.ExecutionError",
                    "errorMessage": failure.message,
                    "errorType": failure.error_type,
                    **(
                        {
                            "scriptStackTraceElements": [
                                {"function": failure.function, "lineNumber": failure.line}
                            ]
                        }
                        if failure.function
                        else {}
                    ),
                }
            ],
        },
    }
