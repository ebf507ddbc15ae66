"""The API documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), from vendored files.

FastAPI's own pages load both from a CDN: a third-party script on the dashboard's origin,
where the API key sits in `localStorage`, and blank pages offline. These pages load only
this service's files (`static/vendor`, refreshed with `npm ci && npm run vendor`), and
their Content-Security-Policy keeps it so.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

# The viewers style their elements inline and ReDoc searches in a worker made from a blob;
# scripts and every connection stay on this origin.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
_HEADERS = {
    "Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - API documentation</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/vendor/swagger-ui.css">
</head>
<body data-openapi-url="{openapi_url}">
  <div id="swagger-ui"></div>
  <script src="/static/vendor/swagger-ui-bundle.js"></script>
  <script src="/static/docs/swagger-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - API reference</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
  <redoc spec-url="{openapi_url}"></redoc>
  <script src="/static/vendor/redoc.standalone.js"></script>
</body>
</html>
"""


def include_docs(app: FastAPI) -> None:
    """Serve `/docs` and `/redoc` for `app`'s OpenAPI document (create `app` with
    `docs_url=None, redoc_url=None`; the vendored files come with the dashboard's `/static`)."""
    values = {"title": escape(app.title), "openapi_url": escape(app.openapi_url or "/openapi.json")}
    swagger, redoc = _SWAGGER_PAGE.format(**values), _REDOC_PAGE.format(**values)
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger, headers=_HEADERS)

    @router.get("/redoc")
    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc, headers=_HEADERS)

    app.include_router(router)
