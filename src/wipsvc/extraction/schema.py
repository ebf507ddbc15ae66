"""Product fields from a schema.org node, whichever syntax it came from (JSON-LD, microdata, RDFa).

Real pages bend schema.org in many ways: types in any case or as lists, products inside
``@graph`` or under another type, offers as lists, aggregates or variants, list and sale
prices side by side, brands as text, objects or labelled text. Every accessor here accepts
the shapes seen in the wild.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

from wipsvc.extraction.availability import combine, is_available, normalise_state
from wipsvc.extraction.brand import clean_brand
from wipsvc.extraction.labels import valid_gtin
from wipsvc.extraction.prices import amount_in, currency_code, parse_amount, shown_currency
from wipsvc.extraction.text import clean_text, resembles

Node = dict[str, Any]
Fields = dict[str, str | list[str]]

PRODUCT_TYPES = frozenset(
    {"product", "productgroup", "productmodel", "individualproduct", "someproducts", "vehicle", "car", "book"}
)
GTIN_KEYS = ("gtin13", "gtin", "gtin14", "gtin12", "gtin8", "isbn")
# Offers or price specifications that name the price a shop no longer asks.
_NOT_SELLING_PRICE = re.compile(r"listprice|strikethrough|msrp|srp|wasprice|regular", re.IGNORECASE)


def walk(items: Any) -> Iterator[Node]:
    """Every object in a JSON-LD document, breadth-first, so a page's main entity comes first."""
    queue: deque[Any] = deque([items])
    while queue:
        node = queue.popleft()
        if isinstance(node, list):
            queue.extend(node)
        elif isinstance(node, dict):
            yield node
            queue.extend(value for value in node.values() if isinstance(value, dict | list))


def type_names(node: Node) -> set[str]:
    types = node.get("@type", node.get("type"))
    names = types if isinstance(types, list) else [types]
    return {re.split(r"[/#:]", name)[-1].lower() for name in names if isinstance(name, str)}


def find_product(items: Any, title: str = "") -> Node | None:
    """The page's main product: one named as the page's title, then a named Product with offers,
    the shallowest first. Failing a product type, any named thing that carries offers (an
    event's ticket, say).
    """
    products: list[Node] = []
    offered: list[Node] = []
    for node in walk(items):
        if type_names(node) & PRODUCT_TYPES:
            products.append(node)
        elif "offers" in node and clean_text(node.get("name")):
            offered.append(node)
    named = [node for node in products if clean_text(node.get("name"))]
    with_offers = [node for node in named if node.get("offers") or node.get("hasVariant")]
    candidates = with_offers or named or products or offered
    titled = [node for node in candidates if title and resembles(clean_text(node.get("name")), title)]
    chosen = titled or candidates
    return chosen[0] if chosen else None


def same_products(node: Node, items: Any) -> list[Node]:
    """Other product nodes of the same name: one per size or colour on some pages."""
    name = clean_text(node.get("name"))
    return [
        other
        for other in walk(items)
        if other is not node and type_names(other) & PRODUCT_TYPES and clean_text(other.get("name")) == name
    ]


def product_fields(
    node: Node, base_url: str, language: str = "", variants: list[Node] | None = None
) -> Fields:
    offers = [offer for product in [node, *(variants or [])] for offer in _offers(product)]
    price, currency = _selling_price(offers)
    if not price:
        price = parse_amount(node.get("price"))  # not schema.org, but seen on real pages
    availability = combine([normalise_state(offer.get("availability")) for offer in offers])
    images = _images(node.get("image"), base_url)
    first_variant = _first_dict(node.get("hasVariant"))
    if not images and first_variant is not None:
        images = _images(first_variant.get("image"), base_url)
    return {
        "title": clean_text(node.get("name")),
        "brand": clean_brand(node.get("brand")) or clean_brand(node.get("manufacturer")),
        "price": price,
        "currency": currency_code(currency, language),
        "description": clean_text(node.get("description"), single_line=False),
        "image_url": images[0] if images else "",
        "images": images,
        "gtin": next((gtin for key in GTIN_KEYS if (gtin := valid_gtin(_identifier(node.get(key))))), ""),
        "mpn": _identifier(node.get("mpn")),
        "sku": _identifier(node.get("sku")),
        "availability": availability or normalise_state(node.get("availability")),
        "category": _category(node.get("category")),
        "color": clean_text(node.get("color")),
        "material": clean_text(node.get("material")),
    }


def _offers(node: Node) -> Iterator[Node]:
    """Every offer of the product and its variants, aggregates opened up (their own figures too)."""
    sources = [node.get("offers")]
    variants = node.get("hasVariant")
    for variant in variants if isinstance(variants, list) else [variants]:
        if isinstance(variant, dict):
            sources.append(variant.get("offers"))
    for source in sources:
        for offer in source if isinstance(source, list) else [source]:
            if not isinstance(offer, dict):
                continue
            offer = {key.lower(): value for key, value in offer.items()}  # "lowprice" is seen too
            yield offer
            nested = offer.get("offers")
            for inner in nested if isinstance(nested, list) else [nested]:
                if isinstance(inner, dict):
                    yield {
                        "pricecurrency": offer.get("pricecurrency"),
                        **{k.lower(): v for k, v in inner.items()},
                    }


def _selling_price(offers: list[Node]) -> tuple[str, str]:
    """The price a buyer pays now: the lowest of the available offers (a sale beats a list price)."""
    priced: list[tuple[str, str, bool]] = []
    for offer in offers:
        if _NOT_SELLING_PRICE.search(clean_text(offer.get("@type")) + clean_text(offer.get("pricetype"))):
            continue
        raw = _first_present(offer, "price", "lowprice")
        # A price written with its currency ("71,91 €") names it when the offer does not.
        currency = clean_text(offer.get("pricecurrency")) or (
            shown_currency(raw) if isinstance(raw, str) else ""
        )
        amount = amount_in(raw)
        if not amount:
            amount, spec_currency = _specification_price(offer.get("pricespecification"))
            currency = currency or spec_currency
        if amount:
            available = is_available(normalise_state(offer.get("availability")))
            priced.append((amount, currency, available))
    if not priced:
        return "", next((c for o in offers if (c := clean_text(o.get("pricecurrency")))), "")
    choice = [entry for entry in priced if entry[2]] or priced
    amount, currency, _ = min(choice, key=lambda entry: float(entry[0]))
    return amount, currency or next((entry[1] for entry in priced if entry[1]), "")


def _specification_price(value: Any) -> tuple[str, str]:
    specs = [spec for spec in (value if isinstance(value, list) else [value]) if isinstance(spec, dict)]
    selling = [s for s in specs if not _NOT_SELLING_PRICE.search(clean_text(s.get("priceType")))]
    amounts = [
        (amount, clean_text(s.get("priceCurrency")))
        for s in selling
        if (amount := parse_amount(s.get("price")))
    ]
    return min(amounts, key=lambda entry: float(entry[0])) if amounts else ("", "")


def _identifier(value: Any) -> str:
    text = clean_text(value)
    return "" if len(text) > 64 else text


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
        return " > ".join(text for item in value if (text := clean_text(item)))
    return clean_text(value)
