"""The product as the pipeline sees it: what was extracted from its page, and its descriptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Where a field came from: a layer of the built-in extractor (see wipsvc.extraction), the LLM,
# or "not found" for a field that no layer found.
FieldSource = Literal[
    "json-ld", "microdata", "rdfa", "opengraph", "inline-json", "page", "html", "llm", "not found"
]


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


@dataclass(frozen=True, slots=True)
class Descriptions:
    body_html: str
    features: list[str]
    care_instructions: str
    generator: str  # "template" or "llm"
