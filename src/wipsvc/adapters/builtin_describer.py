"""Template descriptions: the describer used when no LLM is configured (or it fails).

Everything here is a pure function of the extracted fields, so the same product always
gets the same text, and every value that reaches ``body_html`` is HTML-escaped because
it comes straight from a third-party page.
"""

from __future__ import annotations

import re
from html import escape

from wipsvc.domain.products import Descriptions, ExtractedProduct, TokenUsage

GENERATOR_NAME = "template"

# Sentences lifted from the description into ``features`` must read as bullet points.
MAX_FEATURE_SENTENCES = 3
_MIN_SENTENCE_WORDS = 3
_MAX_SENTENCE_CHARS = 160

# A sentence ends at . ! or ? followed by a capital, so "approx. 600 mm" stays whole.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z])")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WHITESPACE = re.compile(r"\s+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])")
_BREADCRUMB_SEPARATOR = re.compile(r"\s*(?:>|/|\||\u00bb|\u203a)\s*")

# Care advice, most specific first: "stainless steel" must win over the generic sink text.
# Each entry: (keywords matched as whole words, advice).
_CARE_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("stainless steel", "inox"),
        "Wipe clean after use with warm soapy water and a soft cloth, rubbing in the direction of "
        "the grain, then dry to avoid water marks. Do not use steel wool, bleach or chloride-based "
        "cleaners.",
    ),
    (
        ("copper",),
        "Rinse and dry after use. Copper develops a natural patina; to restore the shine use a "
        "dedicated copper cleaner. Avoid abrasive pads and harsh chemicals.",
    ),
    (
        ("granite", "composite", "quartz", "silgranit"),
        "Clean daily with warm soapy water and a soft brush or sponge. Remove limescale with a "
        "diluted vinegar solution and rinse well. Avoid placing hot pans directly in the sink.",
    ),
    (
        ("ceramic", "fireclay", "porcelain", "belfast"),
        "Wash with warm soapy water and a soft cloth; a non-abrasive cream cleaner removes marks. "
        "Avoid dropping heavy or sharp objects, which can chip the glaze.",
    ),
    (
        ("cast iron", "enamel", "enamelled"),
        "Clean with warm soapy water and a non-abrasive sponge, then dry. Avoid metal scourers "
        "and acidic cleaners, which dull the enamel.",
    ),
    (
        ("brass", "chrome", "nickel", "tap", "taps", "mixer", "faucet"),
        "Wipe with a soft damp cloth and mild soapy water, then dry to prevent limescale spots. "
        "Never use abrasive cleaners, bleach or acidic descalers on the finish.",
    ),
    (
        ("wood", "wooden", "bamboo", "oak", "walnut", "acacia", "beech"),
        "Hand wash with warm soapy water and dry immediately; do not soak or put in the "
        "dishwasher. Oil regularly with food-safe mineral oil to keep the wood from drying out.",
    ),
    (
        ("glass",),
        "Clean with a glass cleaner or warm soapy water and a lint-free cloth. Avoid sudden "
        "temperature changes and abrasive pads.",
    ),
    (
        ("cotton", "linen"),
        "Machine wash at 40°C with similar colours. Tumble dry low or line dry; iron on a medium "
        "setting if needed.",
    ),
    (
        ("leather",),
        "Wipe with a soft dry cloth; treat with a leather conditioner from time to time. Keep "
        "away from direct heat and prolonged sunlight.",
    ),
    (
        ("sink", "sinks", "basin"),
        "Clean after use with warm soapy water and a soft cloth, rinse and dry. Avoid abrasive "
        "cleaners and scourers.",
    ),
)
GENERIC_CARE = (
    "Clean with a soft, damp cloth and mild detergent, then dry thoroughly. Avoid abrasive "
    "cleaners and follow the manufacturer's instructions."
)
_CARE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(r"\b(?:" + "|".join(re.escape(word) for word in words) + r")\b"), advice)
    for words, advice in _CARE_RULES
)


def _field(product: ExtractedProduct, name: str, *, joiner: str = ", ", one_line: bool = True) -> str:
    """A field as plain text; lists (e.g. breadcrumbs) are joined.

    ``one_line=False`` keeps line breaks, which separate the paragraphs of a description.
    """
    value = product.fields.get(name)
    if value is None:
        return ""
    parts = [value] if isinstance(value, str) else value
    if one_line:
        parts = [_WHITESPACE.sub(" ", part) for part in parts]
    return joiner.join(part.strip() for part in parts if part.strip())


def _availability_label(value: str) -> str:
    """``https://schema.org/InStock`` or ``in stock`` -> ``In stock``."""
    token = value.rstrip("/").rsplit("/", 1)[-1]
    words = _CAMEL_BOUNDARY.sub(" ", token).replace("_", " ").strip()
    return words[:1].upper() + words[1:].lower()


def _last_breadcrumb(category: str) -> str:
    parts = [part for part in _BREADCRUMB_SEPARATOR.split(category) if part]
    return parts[-1] if parts else category


def _description_paragraphs(description: str) -> list[str]:
    paragraphs = (_WHITESPACE.sub(" ", chunk).strip() for chunk in _PARAGRAPH_BREAK.split(description))
    return [paragraph for paragraph in paragraphs if paragraph]


def _description_sentences(description: str) -> list[str]:
    """Up to three readable sentences, in page order, without duplicates."""
    sentences: list[str] = []
    for paragraph in _description_paragraphs(description):
        for sentence in _SENTENCE_END.split(paragraph):
            sentence = sentence.strip()
            if (
                len(sentence.split()) >= _MIN_SENTENCE_WORDS
                and len(sentence) <= _MAX_SENTENCE_CHARS
                and sentence not in sentences
            ):
                sentences.append(sentence)
            if len(sentences) == MAX_FEATURE_SENTENCES:
                return sentences
    return sentences


def _key_facts(product: ExtractedProduct) -> list[tuple[str, str]]:
    """(label, value) pairs for every fact the page gave us, in a fixed order."""
    price = _field(product, "price")
    currency = _field(product, "currency")
    availability = _field(product, "availability")
    facts = [
        ("Brand", _field(product, "brand")),
        ("Category", _field(product, "category", joiner=" > ")),
        ("Material", _field(product, "material")),
        ("Colour", _field(product, "color")),
        ("Price", f"{price} {currency}".strip() if price else ""),
        ("Availability", _availability_label(availability) if availability else ""),
        ("GTIN", _field(product, "gtin")),
        ("MPN", _field(product, "mpn")),
    ]
    return [(label, value) for label, value in facts if value]


def _intro_sentence(product: ExtractedProduct, *, sku: str) -> str:
    title = _field(product, "title") or f"Product {sku}"
    brand = _field(product, "brand")
    category = _field(product, "category", joiner=" > ")
    tail = ""
    # "Franke Maris sink by Franke" reads badly, so the brand is only added when new.
    if brand and brand.casefold() not in title.casefold():
        tail += f" by {escape(brand)}"
    if category:
        tail += f", from our {escape(_last_breadcrumb(category))} range"
    # A bare title that already ends a sentence ("Yes!") gets no second full stop.
    full_stop = "" if not tail and title.endswith((".", "!", "?")) else "."
    return f"<strong>{escape(title)}</strong>{tail}{full_stop}"


def _body_html(product: ExtractedProduct, *, sku: str) -> str:
    blocks = [f"<p>{_intro_sentence(product, sku=sku)}</p>"]
    blocks.extend(
        f"<p>{escape(paragraph)}</p>"
        for paragraph in _description_paragraphs(_field(product, "description", one_line=False))
    )
    facts = _key_facts(product)
    if facts:
        items = "".join(f"<li><strong>{label}:</strong> {escape(value)}</li>" for label, value in facts)
        blocks.append(f"<ul>{items}</ul>")
    return "\n".join(blocks)


def _features(product: ExtractedProduct) -> list[str]:
    labelled = [
        ("Brand", _field(product, "brand")),
        ("Material", _field(product, "material")),
        ("Colour", _field(product, "color")),
        ("Category", _field(product, "category", joiner=" > ")),
        ("GTIN", _field(product, "gtin")),
        ("MPN", _field(product, "mpn")),
    ]
    features = [f"{label}: {value}" for label, value in labelled if value]
    features.extend(_description_sentences(_field(product, "description", one_line=False)))
    return features


def care_instructions_for(product: ExtractedProduct) -> str:
    """Care advice chosen by the material first, then by category and title keywords."""
    # The material is the most reliable signal; a "ceramic-look" title must not beat it.
    haystacks = (
        _field(product, "material"),
        " ".join((_field(product, "category", joiner=" "), _field(product, "title"))),
    )
    for haystack in haystacks:
        lowered = haystack.casefold()
        if not lowered.strip():
            continue
        for pattern, advice in _CARE_PATTERNS:
            if pattern.search(lowered):
                return advice
    return GENERIC_CARE


def describe_with_template(product: ExtractedProduct, *, sku: str) -> Descriptions:
    """Deterministic ``body_html``, ``features`` and ``care_instructions`` for one product."""
    return Descriptions(
        body_html=_body_html(product, sku=sku),
        features=_features(product),
        care_instructions=care_instructions_for(product),
        generator=GENERATOR_NAME,
    )


class TemplateDescriber:
    """The :class:`~wipsvc.adapters.base.Describer` that needs no external service."""

    async def describe(
        self, product: ExtractedProduct, *, sku: str, usage: TokenUsage | None = None
    ) -> Descriptions:
        return describe_with_template(product, sku=sku)
