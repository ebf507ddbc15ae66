"""Product state that shop platforms keep in inline JSON.

Read from: Next.js (``__NEXT_DATA__``), Nuxt (``window.__NUXT__``) and other
``window.__…STATE__`` stores, ``application/json`` scripts (Shopify's product JSON among them),
Magento's ``text/x-magento-init``, WooCommerce's ``data-product_variations``, Shopify's
``var meta`` / ``ShopifyAnalytics.meta`` and analytics ``dataLayer`` pushes. Those stores hold
other products too (recommendations, recently viewed), so an object counts only when its name
is the page's title; prices are the ones the store marks as final, sale or current.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import chompjs

from wipsvc.extraction.availability import combine, normalise_state
from wipsvc.extraction.brand import clean_brand
from wipsvc.extraction.document import Page
from wipsvc.extraction.labels import valid_gtin
from wipsvc.extraction.prices import amount_in, currency_code
from wipsvc.extraction.schema import Fields, Node
from wipsvc.extraction.structured import loads_leniently
from wipsvc.extraction.text import clean_text, resembles

_MAX_SCRIPT_CHARS = 3_000_000
_STATE_ASSIGNMENT = re.compile(
    r"(?:window\.__(?:NUXT|INITIAL_STATE|PRELOADED_STATE|APOLLO_STATE|STATE)__|ShopifyAnalytics\.meta|"
    r"\bvar meta|dataLayer\.push|\bdataLayer)\s*(?:=|\()",
)
_STATE_MARKERS = ("__NUXT__", "_STATE__", "ShopifyAnalytics", "var meta", "dataLayer")
_NAME_KEYS = ("name", "title", "productName", "product_name", "item_name", "displayName")
_PRICE_KEYS = (
    "salePrice", "sale_price", "finalPrice", "final_price", "currentPrice", "current_price", "specialPrice",
    "special_price", "display_price", "sellingPrice", "price", "item_price", "priceValue", "unitPrice",
)  # fmt: skip
_CURRENCY_KEYS = ("currency", "currencyCode", "priceCurrency", "currency_code", "currencyIso")
_BRAND_KEYS = ("brand", "brandName", "brand_name", "item_brand", "vendor", "manufacturer")
_STATE_KEYS = ("availability", "stockStatus", "stock_status", "inStock", "in_stock", "isInStock",
               "is_in_stock", "available", "isAvailable", "availableForSale")  # fmt: skip
_NEGATED_STATE_KEYS = ("outOfStock", "out_of_stock", "soldOut", "isSoldOut", "sold_out")
_GTIN_KEYS = ("gtin", "gtin13", "ean", "ean13", "barcode", "upc")
_MPN_KEYS = ("mpn", "manufacturerPartNumber", "partNumber")
_VARIANT_KEYS = ("variants", "variations", "skus", "children")


def inline_json_fields(page: Page, is_shopify: bool) -> Fields:
    """Fields of the page's product as a platform's inline state describes it ({} if none)."""
    title = page.title
    if not title:
        return {}
    best: tuple[int, Fields] | None = None
    for blob in _blobs(page):
        for node, currency in _walk_with_currency(blob, ""):
            name = next((text for key in _NAME_KEYS if (text := clean_text(node.get(key)))), "")
            if not name or not resembles(name, title):
                continue
            fields = _fields(node, currency, is_shopify, page.language)
            score = sum(1 for value in fields.values() if value)
            if fields.get("price") and (best is None or score > best[0]):
                best = (score, fields)
    return best[1] if best else {}


def _blobs(page: Page) -> Iterator[Any]:
    for script in page.tree.iter("script"):
        text = script.text or ""
        if not text or len(text) > _MAX_SCRIPT_CHARS:
            continue
        kind = (script.get("type") or "").lower()
        if ("json" in kind and "ld+json" not in kind) or kind == "text/x-magento-init":
            data = loads_leniently(text)
            if data is not None:
                yield data
        elif (not kind or "javascript" in kind) and any(marker in text for marker in _STATE_MARKERS):
            for match in _STATE_ASSIGNMENT.finditer(text):
                try:
                    yield chompjs.parse_js_object(text[match.end() : match.end() + 500_000])
                except (ValueError, TypeError):
                    continue
    for element in page.tree.xpath('//input[@type="hidden"][starts-with(@value, "{")]'):
        data = loads_leniently(element.get("value") or "")
        if isinstance(data, dict):
            yield data
    for element in page.tree.xpath("//*[@data-product_variations]"):
        variations = loads_leniently(element.get("data-product_variations") or "")
        name = page.title
        if isinstance(variations, list):
            yield {"name": name, "variants": variations}


def _walk_with_currency(blob: Any, currency: str) -> Iterator[tuple[Node, str]]:
    """Objects of ``blob`` with the currency their nearest enclosing object names."""
    stack: list[tuple[Any, str]] = [(blob, currency)]
    while stack:
        value, inherited = stack.pop()
        if isinstance(value, list):
            stack.extend((item, inherited) for item in reversed(value))
        elif isinstance(value, dict):
            own = next((text for key in _CURRENCY_KEYS if isinstance(text := value.get(key), str)), "")
            yield value, own or inherited
            stack.extend(
                (item, own or inherited)
                for item in reversed(list(value.values()))
                if isinstance(item, dict | list)
            )


def _fields(node: Node, currency: str, is_shopify: bool, language: str) -> Fields:
    variants = [
        v
        for key in _VARIANT_KEYS
        if isinstance(node.get(key), list)
        for v in node[key]
        if isinstance(v, dict)
    ]
    offers = [node, *variants]
    states = [_state(offer) for offer in offers]
    cents = is_shopify and "vendor" in node  # Shopify's product JSON counts in cents
    prices = [price for offer in offers if (price := _price(offer, cents))]
    in_stock_prices = [
        _price(offer, cents) for offer, state in zip(offers, states, strict=True) if state == "InStock"
    ]
    choice = [price for price in in_stock_prices if price] or prices
    return {
        "price": min(choice, key=float) if choice else "",
        "currency": currency_code(currency, language),
        "brand": next((brand for key in _BRAND_KEYS if (brand := clean_brand(node.get(key)))), ""),
        "availability": combine(states),
        "gtin": next((text for key in _GTIN_KEYS if (text := valid_gtin(clean_text(node.get(key))))), ""),
        "mpn": next((text for key in _MPN_KEYS if (text := clean_text(node.get(key)))), ""),
        "sku": clean_text(node.get("sku")),
    }


def _price(node: Node, cents: bool) -> str:
    for key in _PRICE_KEYS:
        value = node.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and cents:
            value = value / 100
        if (amount := amount_in(value)) != "":
            return amount
    return ""


def _state(node: Node) -> str:
    states = [normalise_state(node.get(key)) for key in _STATE_KEYS if key in node]
    negated = [
        normalise_state(node.get(key)) for key in _NEGATED_STATE_KEYS if isinstance(node.get(key), bool)
    ]
    states += ["OutOfStock" if state == "InStock" else "InStock" for state in negated if state]
    return next((state for state in states if state), "")
