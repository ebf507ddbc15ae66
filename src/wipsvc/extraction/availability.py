"""Stock states from schema.org values, shop flags and the messages pages show.

Values become schema.org names (``InStock``, ``OutOfStock``, ``PreOrder``, …). Stock messages
are matched in the languages of the shops seen; a negative message wins over a positive one in
the same text ("not in stock" holds "in stock").
"""

from __future__ import annotations

import re
from typing import Any

from wipsvc.extraction.text import clean_text

IN_STOCK, OUT_OF_STOCK = "InStock", "OutOfStock"
SCHEMA_STATES = {
    state.lower(): state
    for state in (
        "InStock", "OutOfStock", "PreOrder", "PreSale", "BackOrder", "LimitedAvailability", "SoldOut",
        "Discontinued", "InStoreOnly", "OnlineOnly", "OutOfStock", "Reserved", "MadeToOrder",
    )
}  # fmt: skip
_FLAG_STATES = {
    "in_stock": IN_STOCK, "instock": IN_STOCK, "in stock": IN_STOCK, "available": IN_STOCK,
    "true": IN_STOCK, "1": IN_STOCK, "yes": IN_STOCK, "out_of_stock": OUT_OF_STOCK,
    "outofstock": OUT_OF_STOCK, "out of stock": OUT_OF_STOCK, "unavailable": OUT_OF_STOCK,
    "sold_out": OUT_OF_STOCK, "soldout": OUT_OF_STOCK, "false": OUT_OF_STOCK, "0": OUT_OF_STOCK,
    "no": OUT_OF_STOCK, "backorder": "BackOrder", "preorder": "PreOrder", "pre_order": "PreOrder",
}  # fmt: skip
_OUT_MESSAGES = re.compile(
    r"out of stock|sold out|currently unavailable|not available|unavailable|no longer available|"
    r"nicht (?:mehr )?(?:auf lager|verfügbar|lieferbar)|derzeit nicht|ausverkauft|"
    r"rupture de stock|épuisé|indisponible|non disponible|esaurit|non disponibile|"
    r"agotado|sin stock|no disponible|indisponível|esgotado|sem estoque|niedostępn|brak w magazynie|"
    r"wyprzedan|nedostupn|ni na zalogi|ni dobavljiv|nije dostupno|vypredan|není skladem|nie je skladom|"
    r"niet op voorraad|uitverkocht|"
    r"slutsåld|ej i lager|udsolgt|loppuunmyyty|ei varastossa|нет в наличии|немає в наявності|"
    r"品切れ|在庫切れ|売り切れ|缺貨|售完|已售完|품절|재고 없음|غير متوفر|נגמר",
    re.IGNORECASE,
)
_IN_MESSAGES = re.compile(
    r"in stock|available|ships? (?:today|within|in)|auf lager|lieferbar|verfügbar|sofort|en stock|"
    r"disponible|disponibile|disponibilit|in magazzino|disponível|em estoque|dostępn|na magazynie|skladem|"
    r"na sklade|dobavljiv|na zalogi|na stanju|dostupno|op voorraad|i lager|på lager|varastossa|в наличии|"
    r"є в наявності|有現貨|現貨|在庫あり|"
    r"재고 있음|متوفر|במלאי",
    re.IGNORECASE,
)


def normalise_state(value: Any) -> str:
    """A schema.org availability name from a schema.org URL, a name or a shop's flag; "" if unknown."""
    if isinstance(value, bool):
        return IN_STOCK if value else OUT_OF_STOCK
    text = clean_text(value)
    if not text:
        return ""
    name = re.split(r"[/#:]", text)[-1].strip()
    lowered = name.lower().replace("-", "_")
    return SCHEMA_STATES.get(lowered.replace("_", "")) or _FLAG_STATES.get(lowered, "")


def from_message(text: str) -> str:
    """``InStock`` or ``OutOfStock`` from a stock message such as "Only 3 left in stock"; "" if neither."""
    sample = text[:300]
    if _OUT_MESSAGES.search(sample):
        return OUT_OF_STOCK
    if _IN_MESSAGES.search(sample) or re.search(r"\bonly \d+ left\b", sample, re.IGNORECASE):
        return IN_STOCK
    return ""


def is_available(state: str) -> bool:
    return state not in ("", OUT_OF_STOCK, "SoldOut", "Discontinued")


def combine(states: list[str]) -> str:
    """One state for several offers or variants: in stock if any of them is."""
    known = [state for state in states if state]
    available = [state for state in known if is_available(state)]
    if IN_STOCK in available:
        return IN_STOCK
    return (available or known or [""])[0]
