"""The layered extractor: ``extract(html, url)`` reads a page the way an expert scraper does.

Layers, each field taken from the first layer that has it (``sources`` records which):

1. ``json-ld`` — JSON-LD, types in any case, products in ``@graph`` or under another type;
2. ``microdata`` — microdata items, then ``itemprop`` values outside any item;
3. ``rdfa`` — RDFa items;
4. ``opengraph`` — OpenGraph and ``product:`` meta tags anywhere in the document;
5. ``inline-json`` — shop platforms' inline state (see :mod:`wipsvc.extraction.platforms`);
6. ``page`` — the visible page: price next to the title, stock messages, buy button, brand label;
7. ``html`` — the ``<h1>`` or ``<title>`` as the title when nothing better named the product.

A page is a product page when it has a title and at least one product signal: a price, an
enabled buy control, a stock state, a SKU, GTIN or MPN, or a product in structured data or
platform state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wipsvc.extraction.document import Page
from wipsvc.extraction.meta import meta_fields
from wipsvc.extraction.platforms import inline_json_fields
from wipsvc.extraction.prices import currency_code
from wipsvc.extraction.rules import is_shopify, matching_rules
from wipsvc.extraction.schema import Fields, find_product, product_fields, same_products
from wipsvc.extraction.structured import json_ld_blocks, loose_microdata, microdata_items, rdfa_items
from wipsvc.extraction.visible import VisibleFindings, visible_fields

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# The fields every product should have; ``sources`` marks those no layer found as NOT_FOUND.
KEY_FIELDS = (
    "title",
    "price",
    "currency",
    "availability",
    "brand",
    "image_url",
    "description",
    "sku",
    "gtin",
    "mpn",
)
NOT_FOUND = "not found"


@dataclass(slots=True)
class ExtractionResult:
    fields: Fields = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    signals: list[str] = field(default_factory=list)  # why this is a product page

    @property
    def is_product(self) -> bool:
        return bool(self.fields.get("title")) and bool(self.signals)

    def problem(self) -> str:
        """Why the page is not taken as a product page ("" when it is)."""
        if self.is_product:
            return ""
        if not self.fields.get("title"):
            return "no title (no <h1>, og:title or <title>)"
        return "a title but no price, buy button, stock state, SKU/GTIN/MPN or product data"


def extract(html: str, url: str) -> ExtractionResult:
    """Product fields from ``html`` (fetched from ``url``); a pure function that fetches nothing."""
    result = ExtractionResult()
    page = Page.parse(html, url)
    if page is None:
        result.sources = dict.fromkeys(KEY_FIELDS, NOT_FOUND)
        return result
    structured_product = False
    for source, read in (("json-ld", json_ld_blocks), ("microdata", microdata_items), ("rdfa", rdfa_items)):
        fields = _guarded(source, _schema_layer, page, read)
        structured_product = structured_product or bool(fields)
        _merge(result, fields, source)
    _merge(result, _guarded("microdata", _loose_microdata_layer, page), "microdata")
    _merge(result, _guarded("opengraph", meta_fields, page), "opengraph")
    platform = _guarded("inline-json", inline_json_fields, page, is_shopify(html))
    _merge(result, platform, "inline-json")
    seen = _guarded("page", lambda: visible_fields(page, matching_rules(page.tree))) or VisibleFindings()
    shown = {"price": seen.price, "availability": seen.availability, "brand": seen.brand}
    _merge(result, {**shown, "gtin": seen.gtin, "mpn": seen.mpn}, "page")
    if result.fields.get("price") and not result.fields.get("currency"):
        _merge(result, {"currency": currency_code(seen.currency_shown, page.language)}, "page")
    _merge(result, {"title": page.title}, "html")
    result.signals = [
        name
        for name, present in (
            ("structured product", structured_product),
            ("platform product state", bool(platform)),
            ("price", bool(result.fields.get("price"))),
            ("buy control", seen.buy_control),
            ("stock state", _stock_state_shown(result, seen.stock_message)),
            ("identifier", any(result.fields.get(key) for key in ("sku", "gtin", "mpn"))),
        )
        if present
    ]
    for name in KEY_FIELDS:
        result.sources.setdefault(name, NOT_FOUND)
    return result


def _schema_layer(page: Page, read: Callable[..., list[Any]]) -> Fields:
    items = read(page.tree) if read is json_ld_blocks else read(page.tree, page.url)
    node = find_product(items, page.title)
    if node is None:
        return {}
    return product_fields(node, page.url, page.language, same_products(node, items))


def _loose_microdata_layer(page: Page) -> Fields:
    loose = loose_microdata(page.tree, page.url)
    return product_fields({**loose, "offers": loose}, page.url, page.language) if loose else {}


def _guarded(layer: str, read: Callable[..., _T], *args: Any) -> _T | Any:
    """A layer's findings; a layer that fails on an odd page is skipped, the others go on."""
    try:
        return read(*args)
    except Exception:  # one layer's bug must not lose the product
        logger.warning("the %s layer failed on a page; going on without it", layer, exc_info=True)
        return {}


def _stock_state_shown(result: ExtractionResult, from_message: bool) -> bool:
    """A stock state the page states (not one inferred from a buy button)."""
    source = result.sources.get("availability")
    return bool(result.fields.get("availability")) and (source != "page" or from_message)


def _merge(result: ExtractionResult, fields: Fields, source: str) -> None:
    for name, value in fields.items():
        if value and name not in result.fields:
            result.fields[name] = value
            result.sources[name] = source
