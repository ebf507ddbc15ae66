"""Prices as people write them: one number per price, the currency as an ISO 4217 code.

``price-parser`` reads the number in any locale's notation ("1.299,00 €", "24.990",
"30,000원~", "EUR110.00") and takes only the first amount of a text that shows two. The
currency symbol it finds is then turned into a code; a symbol shared by several currencies
("$", "kr", "¥") is settled by the page's language tag when it names a region.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from price_parser import Price

# Symbols and local abbreviations, lower-cased, to the code they most often denote.
_SYMBOLS: dict[str, str] = {
    "€": "EUR", "eur": "EUR", "euro": "EUR", "£": "GBP", "gbp": "GBP", "$": "USD", "us$": "USD",
    "usd": "USD", "c$": "CAD", "ca$": "CAD", "a$": "AUD", "au$": "AUD", "nz$": "NZD", "r$": "BRL",
    "brl": "BRL", "nt$": "TWD", "hk$": "HKD", "s$": "SGD", "mx$": "MXN", "₹": "INR", "rs": "INR",
    "rs.": "INR", "inr": "INR", "₨": "PKR", "chf": "CHF", "fr.": "CHF", "zł": "PLN", "zl": "PLN",
    "pln": "PLN", "lei": "RON", "ron": "RON", "kn": "HRK", "hrk": "HRK", "kč": "CZK", "czk": "CZK",
    "ft": "HUF", "huf": "HUF", "₽": "RUB", "руб": "RUB", "руб.": "RUB", "р.": "RUB", "₴": "UAH",
    "грн": "UAH", "₸": "KZT", "тг": "KZT", "тг.": "KZT", "₩": "KRW", "원": "KRW", "¥": "JPY",
    "円": "JPY", "元": "CNY", "₪": "ILS", "₺": "TRY", "tl": "TRY", "лв": "BGN", "лв.": "BGN",
    "ر.س": "SAR", "sar": "SAR", "د.إ": "AED", "aed": "AED", "kr": "SEK", "kr.": "DKK", "sek": "SEK",
    "nok": "NOK", "dkk": "DKK", "₫": "VND", "฿": "THB", "₱": "PHP", "rp": "IDR", "rm": "MYR",
}  # fmt: skip
# A shared symbol settled by the region of the page's language tag (lang="es-AR").
_BY_REGION: dict[str, dict[str, str]] = {
    "$": {"CA": "CAD", "AU": "AUD", "NZ": "NZD", "MX": "MXN", "AR": "ARS", "CL": "CLP", "CO": "COP",
          "SG": "SGD", "HK": "HKD", "TW": "TWD", "UY": "UYU"},
    "kr": {"NO": "NOK", "DK": "DKK", "IS": "ISK"},
    "kr.": {"NO": "NOK", "SE": "SEK", "IS": "ISK"},
    "¥": {"CN": "CNY"},
    "rs": {"PK": "PKR", "LK": "LKR", "NP": "NPR"},
    "rs.": {"PK": "PKR", "LK": "LKR", "NP": "NPR"},
}  # fmt: skip
_BY_LANGUAGE: dict[str, dict[str, str]] = {
    "kr": {"nb": "NOK", "no": "NOK", "nn": "NOK", "da": "DKK"},
    "¥": {"zh": "CNY"},
    "rs": {"ur": "PKR"},
}
# Where price objects in shop data keep their number: {"price": {"current": {"value": 89.5}}}.
_AMOUNT_KEYS = ("decimalPrice", "value", "amount", "price", "sales", "current", "final", "selling", "raw")
# Codes shops still publish for currencies that were redenominated.
_RETIRED_CODES = {"RUR": "RUB", "BYR": "BYN", "TRL": "TRY", "ROL": "RON"}
_ISO_CODE = re.compile(r"^[A-Z]{3}$")
_RANGE = re.compile(r"\d\s*[-–]\s*\d")


def parse_amount(value: Any) -> str:
    """A plain decimal string ("1299.00") from a price as written; "" if there is none or a range."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float | Decimal):
        return _plain(Decimal(str(value)))
    text = str(value).strip()
    if not text or _RANGE.search(text):
        return ""
    if re.fullmatch(r"-?\d+(\.\d+)?", text):  # a machine-written number: no locale guessing
        return _plain(Decimal(text))
    amount = Price.fromstring(text[:200]).amount
    return _plain(amount) if amount is not None else ""


def amount_in(value: Any) -> str:
    """A price from a number, a text, or an object holding one ({"sales": {"value": 3499}})."""
    for _ in range(3):
        if not isinstance(value, dict):
            break
        value = next((value[key] for key in _AMOUNT_KEYS if value.get(key) not in (None, "")), None)
    return parse_amount(value) if not isinstance(value, dict | list) else ""


def shown_currency(text: str) -> str:
    """The currency symbol or code a price text shows ("€", "Lei", "EUR"), as written."""
    currency = Price.fromstring(text[:200]).currency
    return currency.strip() if currency else ""


def currency_code(shown: Any, language: str = "") -> str:
    """An ISO 4217 code for a code or a symbol as a page shows it; "" when unknown."""
    text = str(shown or "").strip()
    code = text.upper()
    if _ISO_CODE.match(code) and code != "LEI":  # a code, in any case; "Lei" is the leu's symbol
        return _RETIRED_CODES.get(code, code)
    key = text.lower().rstrip("~").strip()
    if not key:
        return ""
    language, _, region = language.replace("_", "-").partition("-")
    region_code = _BY_REGION.get(key, {}).get(region.upper()[:2])
    language_code = _BY_LANGUAGE.get(key, {}).get(language.lower())
    return region_code or language_code or _SYMBOLS.get(key, "")


def _plain(amount: Decimal) -> str:
    try:
        if not amount.is_finite() or amount <= 0:
            return ""
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= -2:
            amount = amount.quantize(Decimal("0.01"))
    except InvalidOperation:
        return ""
    return f"{amount:f}"
