"""The embedded cleaning rules (the ``python`` cleaning backend).

They run on a row's values before the row is written, so :class:`PythonCleaner` does all
its work in ``transform`` and has nothing left to do after the write.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from html.parser import HTMLParser

from wipsvc.collection import CleaningRules

# ``body_html`` is meant to hold markup; every other field is plain text.
HTML_FIELDS = frozenset({"body_html"})
# Fields whose line breaks carry meaning (paragraphs, one feature per line).
MULTILINE_FIELDS = frozenset({"description", "features", "care_instructions", "body_html"})

ELLIPSIS = "…"

_LOOKS_LIKE_HTML = re.compile(r"<[A-Za-z!/]|&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_ANY_WHITESPACE = re.compile(r"\s+")
_INLINE_WHITESPACE = re.compile(r"[^\S\n]+")  # whitespace except newlines
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")
_BLANK_LINE_RUN = re.compile(r"\n{3,}")
_WORD = re.compile(r"[^\W_]+")

# Tags after which text continues on a new line; inline tags (<b>, <a>) join words as-is.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
        "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
# Their text is not content: it would otherwise leak CSS or JavaScript into a cell.
_INVISIBLE_TAGS = frozenset({"script", "style", "template", "noscript"})

# A price with an optional currency symbol or code on either side: "£1,249.00", "249 EUR".
_CURRENCY_MARK = r"[^\d\s.,+-]{1,4}"  # "£", "US$", "GBP", "kr"
_PRICE = re.compile(
    rf"^(?:{_CURRENCY_MARK}\s?)?(?P<number>\d[\d.,' \u00a0\u202f\u2009]*?)(?:\s?{_CURRENCY_MARK})?$"
)
_GROUP_SPACE = re.compile(r"(?<=\d)[' \u00a0\u202f\u2009](?=\d{3}(?:\D|$))")
_PLAIN_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_COMMA_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DOT_THOUSANDS = re.compile(r"^\d{1,3}(?:\.\d{3})+(?:,\d+)?$")
_COMMA_DECIMAL = re.compile(r"^\d+,\d+$")
_CENT = Decimal("0.01")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._invisible_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._invisible_depth += 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # "<br/>" is one line break, not the start and the end of a block.
        if tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._invisible_depth = max(0, self._invisible_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._invisible_depth:
            self.chunks.append(data)


def strip_html(value: str) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, blocks on new lines."""
    if not _LOOKS_LIKE_HTML.search(value):
        return value
    collector = _TextCollector()
    collector.feed(value)
    collector.close()
    return "".join(collector.chunks)


def collapse_whitespace(value: str, *, keep_lines: bool) -> str:
    """One space for every run of whitespace; ``keep_lines`` keeps single line breaks."""
    if not keep_lines:
        return _ANY_WHITESPACE.sub(" ", value)
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _SPACE_AROUND_NEWLINE.sub("\n", _INLINE_WHITESPACE.sub(" ", value))
    return _BLANK_LINE_RUN.sub("\n\n", value)


def normalise_price(value: str) -> str | None:
    """``"£1,249.5"`` -> ``"1249.50"``; ``None`` when the value is not a single price."""
    match = _PRICE.match(value.strip())
    if match is None:
        return None
    number = _GROUP_SPACE.sub("", match.group("number").strip())
    if _PLAIN_NUMBER.match(number):
        canonical = number
    elif _COMMA_THOUSANDS.match(number):
        canonical = number.replace(",", "")
    elif _DOT_THOUSANDS.match(number):
        canonical = number.replace(".", "").replace(",", ".")
    elif _COMMA_DECIMAL.match(number):
        canonical = number.replace(",", ".")
    else:
        return None
    try:
        amount = Decimal(canonical)
    except InvalidOperation:  # pragma: no cover - the patterns above only admit valid numbers
        return None
    return str(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


def title_case(value: str) -> str:
    """``"BLANCO"`` -> ``"Blanco"``, ``"villeroy & boch"`` -> ``"Villeroy & Boch"``."""
    return _WORD.sub(lambda word: word[0][:1].upper() + word[0][1:].lower(), value)


def cap_length(value: str, max_length: int) -> str:
    """Shorten to at most ``max_length`` characters, cutting between words and adding "…"."""
    if len(value) <= max_length:
        return value
    room = max_length - len(ELLIPSIS)
    cut = value[:room]
    # Cutting inside a word: fall back to the last space, unless the first word alone is too long.
    if not value[room].isspace():
        last_space = cut.rfind(" ")
        if last_space > 0:
            cut = cut[:last_space]
    return cut.rstrip(" ,;:-\u2013\u2014") + ELLIPSIS


def clean_value(name: str, value: str, rules: CleaningRules) -> str:
    """Apply the rules to one field."""
    if rules.strip_html_in_text and name not in HTML_FIELDS:
        value = strip_html(value)
    if rules.collapse_spaces:
        value = collapse_whitespace(value, keep_lines=name in MULTILINE_FIELDS)
    if rules.trim_whitespace:
        value = value.strip()
    if name == "price" and rules.normalise_price:
        value = normalise_price(value) or value
    if name == "brand" and rules.title_case_brand:
        value = title_case(value)
    if name == "title":
        value = cap_length(value, rules.max_title_length)
    return value


def clean_values(values: dict[str, str], rules: CleaningRules) -> dict[str, str]:
    """A cleaned copy of a row's values; the input is left untouched."""
    return {name: clean_value(name, value, rules) for name, value in values.items()}


class PythonCleaner:
    """The :class:`~wipsvc.adapters.base.Cleaner` for the ``python`` backend."""

    def __init__(self, rules: CleaningRules | None = None) -> None:
        self.rules = rules if rules is not None else CleaningRules()

    def transform(self, values: dict[str, str]) -> dict[str, str]:
        return clean_values(values, self.rules)

    async def run(self, *, row_num: int, sku: str) -> None:
        # The rules already ran in ``transform``, before the row was written.
        return None
