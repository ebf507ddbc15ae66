"""A built-in sample shop ("Basin & Brass", kitchen sinks and taps) for demos and tests.

It is a real HTTP server on 127.0.0.1, so the whole pipeline — fetch, extraction,
description, cleaning, sheet — can run without touching the internet. The pages cover
the markup styles the extractor must handle: JSON-LD (plain, ``@graph``,
``AggregateOffer``, relative image URLs), microdata only, OpenGraph only, and one
discontinued product whose page is served with **HTTP 200** but holds no product data at
all (shops really do this; the pipeline must report it as a product-level failure rather
than write an empty row).

``start()`` and ``stop()`` are synchronous: uvicorn serves the app on its own event loop in
a daemon thread, so the shop works the same from sync code, the CLI and async tests
(``async with SampleShop()`` runs them in a worker thread).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from html import escape
from importlib.resources import files
from types import TracebackType
from typing import Literal, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

Markup = Literal["json-ld", "microdata", "opengraph", "none"]

_START_TIMEOUT_SECONDS = 10.0
_STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class DemoPage:
    sku: str
    slug: str  # served at /products/{slug}; the page is pages/{slug}.html
    markup: Markup  # the only structured data on the page
    note: str  # what this page exercises


DEMO_PAGES: tuple[DemoPage, ...] = (
    DemoPage("BB-1001", "kelso-linea-50-undermount-sink", "json-ld", "plain Product + Offer"),
    DemoPage("BB-1002", "harrow-finch-belfast-600-ceramic-sink", "json-ld", "Product inside @graph"),
    DemoPage("BB-1003", "norland-arc-pull-down-mixer-tap", "json-ld", "AggregateOffer (lowPrice/highPrice)"),
    DemoPage(
        "BB-1004", "aquaverde-quadra-15-bowl-granite-sink", "json-ld", "relative image URLs, numeric price"
    ),
    DemoPage("BB-1005", "brightwater-flex-pull-out-spray-tap", "microdata", "microdata with nested Brand"),
    DemoPage("BB-1006", "thornbury-3-in-1-boiling-water-tap", "microdata", "microdata, out of stock"),
    DemoPage("BB-1007", "orwell-hammered-copper-farmhouse-sink", "opengraph", "og: + product:price:amount"),
    DemoPage("BB-1008", "harrow-finch-oak-sink-cover-board", "opengraph", "og: with escaped ampersands"),
    DemoPage("BB-1099", "kelso-classic-double-drainer-sink", "none", "discontinued: HTTP 200, no product"),
)
BROKEN_SKUS = frozenset(page.sku for page in DEMO_PAGES if page.markup == "none")


def load_page(slug: str) -> str:
    """The HTML of one demo page, read from the package data."""
    return files("wipsvc.demo").joinpath("pages", f"{slug}.html").read_text(encoding="utf-8")


def _index_html(pages: tuple[DemoPage, ...]) -> str:
    links = "".join(
        f'<li><a href="/products/{escape(page.slug)}">{escape(page.slug)}</a> ({escape(page.sku)})</li>'
        for page in pages
    )
    return (
        '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">'
        "<title>Basin &amp; Brass</title></head><body><h1>Basin &amp; Brass</h1>"
        f"<ul>{links}</ul></body></html>"
    )


def build_shop_app(pages: tuple[DemoPage, ...] = DEMO_PAGES) -> Starlette:
    """The shop as an ASGI app (also usable in-process with ``httpx.ASGITransport``)."""
    html_by_slug = {page.slug: load_page(page.slug) for page in pages}
    index_html = _index_html(pages)

    async def index(request: Request) -> Response:
        return HTMLResponse(index_html)

    async def product(request: Request) -> Response:
        html = html_by_slug.get(request.path_params["slug"])
        if html is None:
            return HTMLResponse("<!DOCTYPE html><title>Not found</title><h1>Page not found</h1>", 404)
        return HTMLResponse(html)

    return Starlette(routes=[Route("/", index), Route("/products/{slug}", product)])


class SampleShop:
    """The demo shop served over HTTP on 127.0.0.1 (an ephemeral port unless ``port`` is given)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; only known once started."""
        if self._base_url is None:
            raise RuntimeError("the sample shop is not running; call start() first")
        return self._base_url

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def url_for(self, page: DemoPage) -> str:
        return f"{self.base_url}/products/{page.slug}"

    def products(self) -> list[tuple[str, str]]:
        """(sku, url) for every page, including the broken one."""
        return [(page.sku, self.url_for(page)) for page in DEMO_PAGES]

    def start(self) -> None:
        """Bind, serve in a background thread, and return once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("the sample shop is already started")
        # Binding here, not in uvicorn, is how we learn the ephemeral port before serving. The
        # protocol is named so that asyncio sets TCP_NODELAY on accepted connections (see embedded.py).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self._host, self._port))
        except OSError:
            listener.close()
            raise
        host, port = listener.getsockname()[:2]
        config = uvicorn.Config(
            build_shop_app(),
            log_config=None,  # leave the host application's logging alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name="wipsvc-sample-shop", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, listener
        self._base_url = f"http://{host}:{port}"
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sample shop failed to start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving and wait for the thread; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT_SECONDS)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._base_url = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
