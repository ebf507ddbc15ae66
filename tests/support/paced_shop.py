"""A shop of generated product pages on 127.0.0.1 that takes its time answering.

Any SKU has a page at ``/p/{sku}`` with JSON-LD product data derived from the SKU, so a
test (or a benchmark) can make hundreds of distinct products and know what each sheet
row must end up holding. Each page is answered after a random pause drawn from
``latency``, so that a job of many products lasts long enough to be interrupted; SKUs in
``broken`` get an HTTP 200 page without any product data (a product-level failure).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import zlib
from collections import Counter
from collections.abc import Iterable
from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.fakes.server import ServedFake, ThreadedServer

CURRENCY = "EUR"
BRAND = "Paced & Co"


def expected_fields(sku: str) -> dict[str, str]:
    """The fields a product page states (and so the sheet row must show) for ``sku``."""
    cents = 1_000 + zlib.crc32(sku.encode()) % 90_000
    return {
        "title": f"Product {sku}",
        "brand": BRAND,
        "price": f"{cents // 100}.{cents % 100:02d}",
        "currency": CURRENCY,
    }


def _product_page(sku: str) -> str:
    fields = expected_fields(sku)
    description = f"The {fields['title']} is a sturdy product for every kitchen."
    data = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": fields["title"],
        "sku": sku,
        "brand": {"@type": "Brand", "name": fields["brand"]},
        "description": description,
        "offers": {"@type": "Offer", "price": fields["price"], "priceCurrency": fields["currency"]},
    }
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{escape(fields['title'])} | Paced Shop</title>"
        f'<script type="application/ld+json">{json.dumps(data)}</script></head>'
        f"<body><h1>{escape(fields['title'])}</h1><p>{escape(description)}</p></body></html>"
    )


def _discontinued_page(sku: str) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Discontinued</title></head>'
        f"<body><p>Item {escape(sku)} is no longer available.</p></body></html>"
    )


class PacedShop(ServedFake):
    """``with PacedShop(latency=(0.2, 0.5), broken={"X-3"}) as shop: shop.url("X-1")``."""

    def __init__(
        self,
        *,
        latency: tuple[float, float] = (0.0, 0.0),
        broken: Iterable[str] = (),
        seed: int | None = None,
    ) -> None:
        self.latency = latency
        self.broken = frozenset(broken)
        self.hits: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/p/{sku}", self._page)])
        self._server = ThreadedServer(self.app)

    @property
    def base_url(self) -> str:
        return self._server.url

    def url(self, sku: str) -> str:
        return f"{self._server.url}/p/{sku}"

    def products(self, prefix: str, count: int) -> list[tuple[str, str]]:
        """``count`` (sku, url) pairs: ``PREFIX-001``, ``PREFIX-002``, …"""
        skus = [f"{prefix}-{n:03d}" for n in range(1, count + 1)]
        return [(sku, self.url(sku)) for sku in skus]

    async def _page(self, request: Request) -> HTMLResponse:
        sku = request.path_params["sku"]
        with self._lock:
            self.hits[sku] += 1
            pause = self._random.uniform(*self.latency)
        if pause > 0:
            await asyncio.sleep(pause)
        html = _discontinued_page(sku) if sku in self.broken else _product_page(sku)
        return HTMLResponse(html)
