"""OpenGraph and product meta tags (``og:``, ``product:``), wherever in the document they are."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from wipsvc.extraction.availability import normalise_state
from wipsvc.extraction.brand import clean_brand
from wipsvc.extraction.document import Page
from wipsvc.extraction.labels import valid_gtin
from wipsvc.extraction.prices import currency_code, parse_amount
from wipsvc.extraction.schema import Fields
from wipsvc.extraction.text import clean_text

# Sale prices first: a page that states both asks the sale price.
PRICE_KEYS = (
    "product:sale_price:amount", "og:sale_price:amount", "product:price:amount", "og:price:amount",
    "og:price", "product:price", "twitter:data1:price",
)  # fmt: skip
CURRENCY_KEYS = (
    "product:sale_price:currency", "og:sale_price:currency", "product:price:currency",
    "og:price:currency", "og:currency",
)  # fmt: skip
_TEXT_KEYS: dict[str, tuple[str, ...]] = {
    "title": ("og:title",),
    "sku": ("product:retailer_item_id", "product:sku", "og:sku"),
    "gtin": ("product:gtin", "product:ean", "product:upc", "og:ean", "og:upc"),
    "mpn": ("product:mpn", "og:mpn"),
    "category": ("product:category",),
    "color": ("product:color",),
    "material": ("product:material",),
}
_BRAND_KEYS = ("product:brand", "og:brand", "brand", "product:manufacturer")
_AVAILABILITY_KEYS = ("product:availability", "og:availability", "availability")
_IMAGE_KEYS = ("og:image", "og:image:url", "og:image:secure_url")


def meta_fields(page: Page) -> Fields:
    meta = page.meta
    fields: Fields = {name: _first(meta, keys) for name, keys in _TEXT_KEYS.items()}
    fields["gtin"] = valid_gtin(str(fields["gtin"]))
    fields["description"] = clean_text(meta.get("og:description"), single_line=False)
    fields["brand"] = clean_brand(_first(meta, _BRAND_KEYS))
    fields["availability"] = normalise_state(_first(meta, _AVAILABILITY_KEYS))
    price_key = next((key for key in PRICE_KEYS if parse_amount(meta.get(key))), "")
    fields["price"] = parse_amount(meta.get(price_key)) if price_key else ""
    fields["currency"] = currency_code(_first(meta, CURRENCY_KEYS), page.language)
    image = urljoin(page.url, _first(meta, _IMAGE_KEYS))
    images = [image] if urlsplit(image).scheme in ("http", "https") and _first(meta, _IMAGE_KEYS) else []
    fields["image_url"] = images[0] if images else ""
    fields["images"] = images
    return fields


def _first(meta: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((text for key in keys if (text := clean_text(meta.get(key)))), "")
