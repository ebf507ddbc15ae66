"""Brand names without the labels and phrases pages wrap them in."""

from __future__ import annotations

import re
from typing import Any

from wipsvc.extraction.text import clean_text

# "Brand: X", "Marca: X", "Marke: X", "Marque : X", "Merk: X", "Бренд: X", "品牌：X".
_LABEL = re.compile(
    r"^(?:brand|by|marca|marke|marque|merk|märke|mærke|merkki|marka|značka|brend|бренд|марка|"
    r"производитель|manufacturer|hersteller|fabricant|fabbricante|fabricante|producent|品牌|ブランド|브랜드)"
    r"\s*[:：]?\s+|^(?:brand|marca|marke|marque|merk|marka|бренд|品牌)\s*[:：]\s*",
    re.IGNORECASE,
)
# "Visit the X Store", "Besuchen Sie den X-Store", "Visita lo Store di X", "Visiter la boutique X".
_STORE_LINK = re.compile(
    r"^(?:visit the (?P<a>.+?) store|besuchen sie den (?P<b>.+?)-store|visita lo store di (?P<c>.+)|"
    r"visiter la boutique (?P<d>.+)|visita la tienda de (?P<e>.+)|bezoek de (?P<f>.+?)-winkel|"
    r"odwiedź sklep (?P<g>.+))$",
    re.IGNORECASE,
)
_LABEL_INSIDE = re.compile(
    r"\b(?:brand|marca|marke|marque|merk|marka|бренд)\s*[:：]\s*(\S.*)$", re.IGNORECASE
)
_MAX_LENGTH = 80


def clean_brand(value: Any) -> str:
    """The brand's name; "" for placeholders, empty values and text too long to be a name."""
    if isinstance(value, dict) and value.get("@type") not in (None, "Brand", "Organization"):
        value = value.get("name")
    text = clean_text(value)
    store = _STORE_LINK.match(text)
    if store:
        text = next(group for group in store.groups() if group)
    text = _LABEL.sub("", text).strip(" :-–|,")
    # "See more from the brand: X" — a label ending the text's lead-in.
    labelled = _LABEL_INSIDE.search(text)
    if labelled:
        text = labelled.group(1).strip()
    if not text or len(text) > _MAX_LENGTH or not re.search(r"\w", text):
        return ""
    return text
