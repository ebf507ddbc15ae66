"""The contracts between the pipeline and the outside world.

Each external system sits behind one Protocol here. The pipeline only knows these
types; real clients and embedded defaults implement them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from wipsvc.domain.products import Descriptions, ExtractedProduct, TokenUsage
from wipsvc.limits import Limits


@dataclass(frozen=True, slots=True)
class FetchedPage:
    url: str  # final URL after redirects
    status_code: int
    content_type: str
    text: str


class PageFetcher(Protocol):
    async def fetch(self, url: str) -> FetchedPage:
        """Fetch a product page; raises StepError for refused, failed or oversized fetches."""
        ...

    async def aclose(self) -> None: ...


class Extractor(Protocol):
    async def extract(
        self, page: FetchedPage, *, sku: str, usage: TokenUsage | None = None
    ) -> ExtractedProduct: ...


class Describer(Protocol):
    async def describe(
        self, product: ExtractedProduct, *, sku: str, usage: TokenUsage | None = None
    ) -> Descriptions: ...


class SheetSession(Protocol):
    """One job's view of a worksheet: opened once per job, used by all its products."""

    async def find_row(self, sku: str) -> int | None: ...

    async def refresh(self) -> None:
        """Read the SKU column again: a write of another (paused) instance may have landed."""
        ...

    async def append_row(self, sku: str, url: str) -> int:
        """Append a SKU+URL row and return its 1-based row number."""
        ...

    async def write_fields(self, row_num: int, values: Mapping[str, str]) -> None:
        """Write logical fields (mapped to columns by the collection) to one row."""
        ...

    async def close(self) -> None: ...


class Cleaner(Protocol):
    """Post-processing of a finished row: Python rules or the sheet's Apps Script."""

    def transform(self, values: dict[str, str]) -> dict[str, str]:
        """Clean values before they are written (the embedded rules); identity elsewhere."""
        ...

    async def run(self, *, row_num: int, sku: str) -> None:
        """Clean the row in place after it is written (Apps Script); no-op elsewhere."""
        ...


@dataclass(slots=True)
class Backends:
    """One job's adapters, opened for its collection.

    ``limits`` are the quota buckets their calls draw on, when they draw on any: the runner
    reads how long the quotas are paused for its ETAs.
    """

    sheet: SheetSession
    fetcher: PageFetcher
    extractor: Extractor
    describer: Describer
    cleaner: Cleaner
    limits: Limits | None = None

    async def close(self) -> None:
        await self.sheet.close()
