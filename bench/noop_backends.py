"""Backends that answer every step at once: what is left of a product's cost is the engine's own.

The sheet is a list in memory, the page a constant, the extraction and the descriptions fixed
values, the cleaning a no-op: nothing is parsed, fetched or written outside the service's store.
"""

from __future__ import annotations

from collections.abc import Mapping

from wipsvc.adapters.base import Backends, FetchedPage
from wipsvc.domain.products import Descriptions, ExtractedProduct, FieldSource, TokenUsage

PAGE = FetchedPage(url="http://127.0.0.1/noop", status_code=200, content_type="text/html", text="")
EXTRACTED: dict[str, str | list[str]] = {
    "title": "No-op product",
    "brand": "Bench",
    "price": "1.00",
    "currency": "EUR",
}
SOURCES: dict[str, FieldSource] = dict.fromkeys(EXTRACTED, "json-ld")


class NoopSheet:
    def __init__(self) -> None:
        self._rows: dict[str, int] = {}

    async def find_row(self, sku: str) -> int | None:
        return self._rows.get(sku)

    async def refresh(self) -> None:
        return None

    async def append_row(self, sku: str, url: str) -> int:
        return self._rows.setdefault(sku, len(self._rows) + 2)

    async def write_fields(self, row_num: int, values: Mapping[str, str]) -> None:
        return None

    async def close(self) -> None:
        return None


class NoopFetcher:
    async def fetch(self, url: str) -> FetchedPage:
        return PAGE

    async def aclose(self) -> None:
        return None


class NoopExtractor:
    async def extract(
        self, page: FetchedPage, *, sku: str, usage: TokenUsage | None = None
    ) -> ExtractedProduct:
        return ExtractedProduct(fields=dict(EXTRACTED), sources=dict(SOURCES))


class NoopDescriber:
    async def describe(
        self, product: ExtractedProduct, *, sku: str, usage: TokenUsage | None = None
    ) -> Descriptions:
        return Descriptions(
            body_html="<p>No-op.</p>", features=["none"], care_instructions="", generator="template"
        )


class NoopCleaner:
    def transform(self, values: dict[str, str]) -> dict[str, str]:
        return values

    async def run(self, *, row_num: int, sku: str) -> None:
        return None


def noop_backends(fetcher: NoopFetcher) -> Backends:
    """One job's backends; ``fetcher`` is the one the service was given, so that the runner's
    page prefetching goes through it too."""
    return Backends(
        sheet=NoopSheet(),
        fetcher=fetcher,
        extractor=NoopExtractor(),
        describer=NoopDescriber(),
        cleaner=NoopCleaner(),
    )
