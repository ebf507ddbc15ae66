"""Values a page labels in its specification table or details list: "Brand: X", "EAN: …", "Model number: …".

A label is an element's own short text ("Brand", "Marke:", "Item model number"); its value is
the rest of that text after a colon, else the next element's text (the table cell beside it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from wipsvc.extraction.brand import clean_brand
from wipsvc.extraction.document import HtmlTree
from wipsvc.extraction.text import clean_text

_VALUE = r"(?!\w)\s*(?:[:：]\s*(.*))?$"
_LABELS: dict[str, re.Pattern[str]] = {
    "brand": re.compile(
        r"^(?:brand|marca|marke|marque|merk|marka|značka|brend|бренд|марка|производитель|manufacturer|"
        r"hersteller|fabricant|produttore|fabricante|producent|tootja|výrobca|výrobce|proizvođač|proizvajalec|"
        r"gamintojas|ražotājs|valmistaja|tillverkare|produsent|producător|gyártó|üretici|品牌|ブランド|브랜드|מותג)"
        + _VALUE,
        re.IGNORECASE,
    ),
    "gtin": re.compile(
        r"^(?:ean(?:[- ]?1[34])?|gtin(?:[- ]?(?:8|12|13|14))?|upc|isbn(?:[- ]?13)?|barcode|código de barras|"
        r"strichcode|kod ean|jan)" + _VALUE,
        re.IGNORECASE,
    ),
    "mpn": re.compile(
        r"^(?:mpn|item model number|model number|model no\.?|modellnummer|herstellernummer|"
        r"herstellerartikelnummer|manufacturer part number|part number|numero modello articolo|"
        r"numéro du modèle de l'article|référence fabricant|referencia del fabricante|"
        r"número de modelo del producto|número de referencia|código del fabricante|kód výrobce)" + _VALUE,
        re.IGNORECASE,
    ),
}
_LABEL_TAGS = ("th", "td", "dt", "span", "strong", "b", "label", "li", "div", "p")
_DIRECTION_MARKS = re.compile("[\u200e\u200f\u202a-\u202e]")


def labelled_values(tree: HtmlTree) -> dict[str, str]:
    """``brand``, ``gtin`` and ``mpn`` as the page labels them (the first of each)."""
    found: dict[str, str] = {}
    for element in tree.iter(*_LABEL_TAGS):
        text = element.text
        if not text or len(text) > 60:
            continue
        label = _DIRECTION_MARKS.sub("", text).strip()
        for name, pattern in _LABELS.items():
            match = pattern.match(label) if name not in found else None
            if match is None:
                continue
            value = _CLEANERS[name](match.group(1) or "") or _CLEANERS[name](_next_text(element))
            if value:
                found[name] = value
        if len(found) == len(_LABELS):
            break
    return found


def valid_gtin(value: str) -> str:
    """A GTIN-8/12/13/14 (ISBN-13 included) whose check digit is right; "" otherwise."""
    digits = re.sub(r"[\s-]", "", clean_text(value))
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14) or not digits.strip("0"):
        return ""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return digits if (10 - total % 10) % 10 == check else ""


def _mpn(value: str) -> str:
    text = clean_text(_DIRECTION_MARKS.sub("", value)).strip(" :")
    return text if 2 <= len(text) <= 40 and len(text.split()) <= 4 else ""


def _next_text(element: HtmlTree) -> str:
    sibling = element.getnext()
    while sibling is not None and not isinstance(sibling.tag, str):  # comments between label and value
        sibling = sibling.getnext()
    return _DIRECTION_MARKS.sub("", sibling.text_content()) if sibling is not None else ""


_CLEANERS: dict[str, Callable[[str], str]] = {"brand": clean_brand, "gtin": valid_gtin, "mpn": _mpn}
