"""The contracts between the pipeline and the outside world.

Each external system sits behind one Protocol here. The pipeline only knows these
types; real clients and embedded defaults implement them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# Where a field came from: a layer of the built-in extractor (see wipsvc.extraction), the LLM,
# or "not found" for a field that no layer found.
FieldSource = Literal[
    "json-ld", "microdata", "rdfa", "opengraph", "inline-json", "page", "html", "llm", "not found"
]


class StepError(Exception):
    """A product-level failure; the batch goes on.

    ``transient`` errors (timeouts, 429, 5xx) may succeed when retried; permanent
    ones (a 404 page, invalid data, a script error) will not.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


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


@dataclass(slots=True)
class ExtractedProduct:
    """Product data pulled from a page; ``sources`` says where each field came from."""

    fields: dict[str, str | list[str]] = field(default_factory=dict)
    sources: dict[str, FieldSource] = field(default_factory=dict)
    main_text: str = ""

    def filled(self) -> list[str]:
        return [name for name, value in self.fields.items() if value not in ("", [], None)]


@dataclass(slots=True)
class TokenUsage:
    """Tokens spent by one or more LLM calls (``calls`` counts answered requests)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0

    def add(self, usage: Mapping[str, Any] | None) -> None:
        self.calls += 1
        if usage:
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
            self.total_tokens += int(usage.get("total_tokens") or 0)

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "calls": self.calls,
        }


class Extractor(Protocol):
    async def extract(
        self, page: FetchedPage, *, sku: str, usage: TokenUsage | None = None
    ) -> ExtractedProduct: ...


@dataclass(frozen=True, slots=True)
class Descriptions:
    body_html: str
    features: list[str]
    care_instructions: str
    generator: str  # "template" or "llm"


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
