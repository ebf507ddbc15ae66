"""Shape and hygiene of the LLM's answers: the output schemas and the helpers that check and clean them.

Used by :mod:`wipsvc.adapters.llm`; nothing here calls the API.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import nh3
from pydantic import BaseModel, Field

ALLOWED_BODY_TAGS = frozenset({"p", "ul", "ol", "li", "strong", "em", "br", "h3", "h4"})
MAX_FEATURES = 10

_SPACES = re.compile(r"\s+")


class ExtractedFields(BaseModel):
    """Schema of the extraction answer; null = the page does not say."""

    title: str | None = Field(description="Product name as shown on the page.")
    brand: str | None = Field(description="Brand or manufacturer.")
    price: str | None = Field(description="Current price as a number, e.g. 19.99.")
    currency: str | None = Field(description="ISO 4217 code, e.g. EUR.")
    description: str | None = Field(description="The page's product description, plain text.")
    image_url: str | None = Field(description="Main product image URL.")
    images: list[str] = Field(description="Product image URLs found on the page.")
    gtin: str | None = Field(description="EAN/UPC/GTIN digits, only if printed on the page.")
    mpn: str | None = Field(description="Manufacturer part number.")
    sku: str | None = Field(description="The shop's own article number.")
    availability: str | None = Field(description="e.g. InStock, OutOfStock, PreOrder.")
    category: str | None = Field(description="Product category or breadcrumb.")
    color: str | None
    material: str | None


class ProductDescriptions(BaseModel):
    """Schema of the description answer."""

    body_html: str = Field(description="2-4 short paragraphs; only p, ul, ol, li, strong, em, br, h3, h4.")
    features: list[str] = Field(description="3-8 short feature bullet points, plain text.")
    care_instructions: str = Field(description="Care and cleaning advice, plain text; empty if unknown.")


def sanitise_body_html(value: str) -> str:
    """Keep only the allowlisted tags, no attributes; ``<script>``/``<style>`` lose their content too."""
    return nh3.clean(value, tags=set(ALLOWED_BODY_TAGS), attributes={}, strip_comments=True).strip()


def check_descriptions(answer: ProductDescriptions) -> str | None:
    if not plain_text(sanitise_body_html(answer.body_html)):
        return "body_html is empty after sanitising"
    return None


def clean_features(features: list[str]) -> list[str]:
    cleaned: list[str] = []
    for feature in features:
        text = plain_text(feature).lstrip("-•* ").strip()[:200]
        if text and text not in cleaned:
            cleaned.append(text)
    return cleaned[:MAX_FEATURES]


def clean_field(name: str, value: str | list[str] | None, base_url: str) -> str | list[str]:
    """Plain, bounded text; drop values the model cannot have read off the page correctly."""
    if value is None:
        return ""
    if isinstance(value, list):
        urls = [_clean_url(item, base_url) for item in value]
        return list(dict.fromkeys(url for url in urls if url))
    if name == "image_url":
        return _clean_url(value, base_url)
    text = plain_text(value)[:5_000]
    if name == "gtin":
        digits = re.sub(r"[\s-]", "", text)
        return digits if _valid_gtin(digits) else ""  # a hallucinated GTIN rarely has a valid check digit
    if name == "currency":
        text = {"€": "EUR", "$": "USD", "£": "GBP"}.get(text, text).upper()
        return text if re.fullmatch(r"[A-Z]{3}", text) else ""
    return text


def _clean_url(value: str, base_url: str) -> str:
    url = urljoin(base_url, value.strip())
    return url if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc else ""


def _valid_gtin(digits: str) -> bool:
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        return False
    body, check = digits[:-1], int(digits[-1])
    weighted = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - weighted % 10) % 10 == check


def plain_text(value: str) -> str:
    """Markup stripped, entities decoded, whitespace collapsed."""
    return _SPACES.sub(" ", html.unescape(nh3.clean(value, tags=set()))).strip()


def is_empty(value: object) -> bool:
    return value in (None, "", [])
