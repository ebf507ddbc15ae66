"""Product data from a page's structured data: JSON-LD first, then microdata, then OpenGraph.

Each field is taken from the highest-priority source that has it, and ``sources`` records
which one that was. Real pages bend schema.org in many ways (``@graph`` wrappers, type
lists, offers as lists or aggregates, brands as text or objects, relative image URLs), so
every accessor here accepts the shapes seen in the wild.
"""

from __future__ import annotations

import asyncio
import html as html_entities
import json
import logging
import re
from collections import deque
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urljoin, urlsplit

import extruct
import trafilatura
from extruct.utils import parse_html

from wipsvc.adapters.addresses import redact_url
from wipsvc.adapters.base import ExtractedProduct, FetchedPage, FieldSource, StepError, TokenUsage

logger = logging.getLogger(__name__)

MAIN_TEXT_LIMIT = 20_000
SYNTAXES = ["json-ld", "microdata", "opengraph"]
PRODUCT_TYPES = frozenset({"Product", "ProductGroup", "ProductModel", "IndividualProduct", "SomeProducts"})
GTIN_KEYS = ("gtin", "gtin13", "gtin14", "gtin12", "gtin8")
OPENGRAPH_KEYS: dict[str, tuple[str, ...]] = {
    "title": ("og:title",),
    "description": ("og:description",),
    "image_url": ("og:image", "og:image:url", "og:image:secure_url"),
    "price": ("product:price:amount", "og:price:amount"),
    "currency": ("product:price:currency", "og:price:currency"),
    "brand": ("product:brand", "og:brand"),
    "availability": ("product:availability", "og:availability"),
}
_SCHEMA_PREFIX = re.compile(r"^(?:https?://schema\.org/|schema:)", re.IGNORECASE)

Fields = dict[str, str | list[str]]
Node = dict[str, Any]
HtmlTree = Any  # lxml.html.HtmlElement; lxml ships without type hints


def extract_structured(html: str, base_url: str) -> ExtractedProduct:
    """Read product fields from ``html``'s structured data; never fetches anything."""
    product = ExtractedProduct()
    tree = _parse_document(html)
    if tree is not None:
        data = extruct.extract(tree, base_url=base_url, syntaxes=SYNTAXES, uniform=True, errors="ignore")
        json_ld = data.get("json-ld")
        if json_ld is None:
            # extruct drops every JSON-LD block when one is malformed; keep the good ones.
            json_ld = _json_ld_blocks_leniently(tree)
        schema_sources: list[tuple[FieldSource, list[Any]]] = [
            ("json-ld", json_ld),
            ("microdata", data.get("microdata", [])),
        ]
        for source, items in schema_sources:
            node = _find_product(items)
            if node is not None:
                _merge(product, _schema_fields(node, base_url), source)
        for properties in data.get("opengraph", []):
            _merge(product, _opengraph_fields(properties, base_url), "opengraph")
        if "title" not in product.fields:
            _merge(product, {"title": _html_title(tree)}, "html")
    product.main_text = _main_text(html)
    return product


class StructuredDataExtractor:
    """``Extractor`` that needs a product title in JSON-LD, microdata or OpenGraph."""

    async def extract(
        self, page: FetchedPage, *, sku: str, usage: TokenUsage | None = None
    ) -> ExtractedProduct:
        # lxml and trafilatura parsing is CPU-bound: keep it off the event loop.
        product = await asyncio.to_thread(extract_structured, page.text, page.url)
        if product.sources.get("title") in (None, "html"):
            shown = redact_url(page.url)
            raise StepError(
                f"no product data found on {shown}: no title in JSON-LD, microdata or OpenGraph",
                transient=False,
            )
        logger.debug("sku %s: structured data gave %s", sku, ", ".join(product.filled()))
        return product


def _merge(product: ExtractedProduct, fields: Fields, source: FieldSource) -> None:
    for name, value in fields.items():
        if value and name not in product.fields:
            product.fields[name] = value
            product.sources[name] = source


def _parse_document(html: str) -> HtmlTree | None:
    # Bytes, because lxml refuses str input that starts with an XML encoding declaration (XHTML).
    try:
        return parse_html(html.encode("utf-8", "replace"), encoding="UTF-8")
    except Exception:  # lxml's ParserError, e.g. "Document is empty"
        return None


def _json_ld_blocks_leniently(tree: HtmlTree) -> list[Any]:
    items: list[Any] = []
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text_content(), strict=False)
        except ValueError:
            logger.debug("skipping a malformed JSON-LD block")
            continue
        items.extend(data if isinstance(data, list) else [data])
    return items


def _find_product(items: list[Any]) -> Node | None:
    """The page's main product: the shallowest Product node, preferring one with a name."""
    products = [node for node in _walk(items) if _is_product(node)]
    named = [node for node in products if _text(node.get("name"))]
    candidates = named or products
    return candidates[0] if candidates else None


def _walk(items: list[Any]) -> Iterator[Node]:
    # Breadth-first, so that a page's main entity (or a @graph member) comes before the
    # related products and variants nested inside it.
    queue: deque[Any] = deque(items)
    while queue:
        node = queue.popleft()
        if isinstance(node, list):
            queue.extend(node)
        elif isinstance(node, dict):
            yield node
            queue.extend(value for value in node.values() if isinstance(value, dict | list))


def _is_product(node: Node) -> bool:
    types = node.get("@type")
    names = types if isinstance(types, list) else [types]
    return any(isinstance(name, str) and _local_name(name) in PRODUCT_TYPES for name in names)


def _local_name(type_name: str) -> str:
    return re.split(r"[/#:]", type_name)[-1]


def _schema_fields(node: Node, base_url: str) -> Fields:
    offer = _main_offer(node.get("offers"))
    images = _images(node.get("image"), base_url)
    variants = node.get("hasVariant")
    first_variant = _first_dict(variants)
    if first_variant is not None:
        # A ProductGroup often carries its price and pictures only on its variants.
        offer = offer or _main_offer(first_variant.get("offers"))
        images = images or _images(first_variant.get("image"), base_url)
    offer = offer or {}
    price_spec = _first_dict(offer.get("priceSpecification")) or {}
    price_value = _first_present(offer, "price", "lowPrice") or _first_present(price_spec, "price")
    if price_value is None:
        price_value = node.get("price")  # not schema.org, but seen on real pages
    return {
        "title": _text(node.get("name")),
        "brand": _text(node.get("brand")),
        "price": _price(price_value),
        "currency": _text(offer.get("priceCurrency")) or _text(price_spec.get("priceCurrency")),
        "description": _text(node.get("description"), single_line=False),
        "image_url": images[0] if images else "",
        "images": images,
        "gtin": next((gtin for key in GTIN_KEYS if (gtin := _text(node.get(key)))), ""),
        "mpn": _text(node.get("mpn")),
        "sku": _text(node.get("sku")),
        "availability": _availability(offer.get("availability")),
        "category": _category(node.get("category")),
        "color": _text(node.get("color")),
        "material": _text(node.get("material")),
    }


def _main_offer(offers: Any) -> Node | None:
    """The first offer carrying a price (an AggregateOffer's own lowPrice counts), else the first offer."""
    listed = offers if isinstance(offers, list) else [offers]
    candidates = [offer for offer in listed if isinstance(offer, dict)]
    for offer in candidates:
        if _first_present(offer, "price", "lowPrice", "priceSpecification") is not None:
            return offer
        nested = _main_offer(offer.get("offers")) if "offers" in offer else None
        if nested is not None:
            return {"priceCurrency": offer.get("priceCurrency"), **nested}
    return candidates[0] if candidates else None


def _opengraph_fields(properties: Node, base_url: str) -> Fields:
    fields: Fields = {}
    for name, keys in OPENGRAPH_KEYS.items():
        fields[name] = next((value for key in keys if (value := _text(properties.get(key)))), "")
    fields["description"] = _text(properties.get("og:description"), single_line=False)
    images = _images(fields["image_url"], base_url)
    fields["image_url"] = images[0] if images else ""
    fields["images"] = images
    fields["price"] = _price(fields["price"])
    fields["availability"] = _availability(fields["availability"])
    return fields


def _html_title(tree: HtmlTree) -> str:
    # <h1> first: <title> usually carries the shop's name as well.
    for xpath in ("//h1", "//title"):
        for element in tree.xpath(xpath):
            text = _text(element.text_content())
            if text:
                return text
    return ""


def _main_text(html: str) -> str:
    try:
        text = trafilatura.extract(html, include_comments=False, include_tables=True)
    except Exception:  # the main text is a bonus for the LLM; a parser failure must not lose the product
        logger.debug("trafilatura could not extract the main text", exc_info=True)
        return ""
    return (text or "")[:MAIN_TEXT_LIMIT]


def _text(value: Any, *, single_line: bool = True) -> str:
    """A display string from a JSON-LD value: text, number, value object, named object or list."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        text = html_entities.unescape(value).strip()
        return " ".join(text.split()) if single_line else text
    if isinstance(value, dict):
        return _text(value.get("@value", value.get("name")), single_line=single_line)
    if isinstance(value, list):
        return next((text for item in value if (text := _text(item, single_line=single_line))), "")
    return ""


def _first_present(node: Node, *keys: str) -> Any:
    return next((node[key] for key in keys if node.get(key) not in (None, "", [])), None)


def _first_dict(value: Any) -> Node | None:
    if isinstance(value, list):
        return next((item for item in value if isinstance(item, dict)), None)
    return value if isinstance(value, dict) else None


def _images(value: Any, base_url: str) -> list[str]:
    found: list[str] = []
    for reference in _image_references(value):
        url = urljoin(base_url, reference)
        # data: and javascript: "images" are of no use in a catalogue sheet.
        if urlsplit(url).scheme in ("http", "https") and url not in found:
            found.append(url)
    return found


def _image_references(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _image_references(item)
    elif isinstance(value, dict):
        yield from _image_references(value.get("url") or value.get("contentUrl") or value.get("@id"))
    elif isinstance(value, str) and value.strip():
        yield value.strip()


def _category(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return " > ".join(text for item in value if (text := _text(item)))
    return _text(value)


def _availability(value: Any) -> str:
    return _SCHEMA_PREFIX.sub("", _text(value))


def _price(value: Any) -> str:
    """A plain decimal string ("1299.00") from "1,299.00", "1.299,00 €", 1299 or 1299.0; "" if unusable."""
    is_number = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    text = str(value) if is_number else _text(value)
    digits = re.sub(r"[^\d.,]", "", text)
    if not re.search(r"\d", digits) or re.search(r"\d\s*-\s*\d", text):
        return ""  # nothing numeric, or a range such as "10 - 20"
    if "," in digits and "." in digits:
        decimal_comma = digits.rfind(",") > digits.rfind(".")
        digits = digits.replace(".", "").replace(",", ".") if decimal_comma else digits.replace(",", "")
    elif "," in digits:
        whole, _, fraction = digits.rpartition(",")
        thousands = digits.count(",") > 1 or (len(fraction) == 3 and whole != "")
        digits = digits.replace(",", "") if thousands else digits.replace(",", ".")
    elif digits.count(".") > 1:
        digits = digits.replace(".", "")
    try:
        amount = Decimal(digits)
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= -2:
            amount = amount.quantize(Decimal("0.01"))
    except InvalidOperation:
        return ""
    return f"{amount:f}"
