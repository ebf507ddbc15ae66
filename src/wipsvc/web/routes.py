"""Serves the dashboard: `index.html` at `/` and its assets under `/static`.

The assets are plain ES modules plus a vendored Socket.IO client, so running the
service needs no Node.js; `npm run vendor` refreshes the vendored file.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(str(files("wipsvc.web").joinpath("static")))

# The page loads only its own files and talks only to its own origin ('self' covers ws/wss too).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
# Revalidate every time (a cheap 304 thanks to ETags) so an upgraded service never runs stale modules.
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


class _RevalidatedStaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_NO_CACHE)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


@router.get("/")
async def dashboard() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={
            **_NO_CACHE,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def include_dashboard(app: FastAPI) -> None:
    """Add the page and its assets. The mount goes on the app itself: routers of older
    FastAPI releases drop mounts when included."""
    app.include_router(router)
    app.mount("/static", _RevalidatedStaticFiles(directory=STATIC_DIR), name="static")
