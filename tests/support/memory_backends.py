"""In-memory backends for tests of the pipeline and the job engine: a sheet, a page fetcher
that fails as told, and an extractor that always finds the same product."""

from __future__ import annotations

from collections.abc import Mapping

from wipsvc.adapters.base import Backends, FetchedPage
from wipsvc.adapters.builtin_cleaner import PythonCleaner
from wipsvc.adapters.builtin_describer import TemplateDescriber
from wipsvc.domain.errors import StepError
from wipsvc.domain.products import ExtractedProduct, TokenUsage


class Sheet:
    def __init__(self, rows: dict[str, int] | None = None, *, landed: dict[str, int] | None = None) -> None:
        self.rows = dict(rows or {})
        self.landed = dict(landed or {})  # rows a re-read finds: another instance's late appends
        self.appends = 0
        self.writes: list[dict[str, str]] = []
        self.refreshes = 0

    async def find_row(self, sku: str) -> int | None:
        return self.rows.get(sku)

    async def refresh(self) -> None:
        self.refreshes += 1
        self.rows.update(self.landed)

    async def append_row(self, sku: str, url: str) -> int:
        self.appends += 1
        self.rows[sku] = len(self.rows) + 2
        return self.rows[sku]

    async def write_fields(self, row_num: int, values: Mapping[str, str]) -> None:
        self.writes.append(dict(values))

    async def close(self) -> None:
        pass


class Fetcher:
    def __init__(self, failures: list[StepError]) -> None:
        self.failures = failures
        self.calls = 0

    async def fetch(self, url: str) -> FetchedPage:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return FetchedPage(url, 200, "text/html", "<html></html>")

    async def aclose(self) -> None:
        pass


class Extractor:
    async def extract(
        self, page: FetchedPage, *, sku: str, usage: TokenUsage | None = None
    ) -> ExtractedProduct:
        return ExtractedProduct(fields={"title": "Sink", "price": "10"}, sources={"title": "json-ld"})


def memory_backends(sheet: Sheet | None = None, fetcher: Fetcher | None = None) -> Backends:
    return Backends(
        sheet or Sheet(), fetcher or Fetcher([]), Extractor(), TemplateDescriber(), PythonCleaner()
    )
