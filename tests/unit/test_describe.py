from __future__ import annotations

from html.parser import HTMLParser

import pytest

from wipsvc.adapters.base import Describer
from wipsvc.adapters.builtin_describer import GENERIC_CARE, TemplateDescriber, describe_with_template
from wipsvc.domain.products import ExtractedProduct

ALLOWED_TAGS = {"p", "ul", "li", "strong"}


class _TagChecker(HTMLParser):
    """Records tags and text, and fails on anything not well-formed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open_tags: list[str] = []
        self.seen_tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, f"unexpected <{tag}>"
        assert not attrs
        self.open_tags.append(tag)
        self.seen_tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open_tags, f"stray </{tag}>"
        assert self.open_tags[-1] == tag, f"misnested </{tag}>"
        self.open_tags.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_fragment(fragment: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(fragment)
    checker.close()
    assert checker.open_tags == [], f"unclosed {checker.open_tags}"
    return checker


def full_product() -> ExtractedProduct:
    return ExtractedProduct(
        fields={
            "title": "Linea 50 Undermount Sink",
            "brand": "Kelso Steelworks",
            "price": "249.00",
            "currency": "GBP",
            "description": (
                "A deep single-bowl sink pressed from 1.2 mm steel. Tight corner radii make it easy to wipe "
                "out. Sound-deadening pads keep it quiet. It ships with a basket strainer.\n\n"
                "Fits approx. 600 mm cabinets."
            ),
            "image_url": "https://cdn.example/linea.jpg",
            "images": ["https://cdn.example/linea.jpg"],
            "gtin": "5060123450017",
            "mpn": "LIN50UM",
            "sku": "KS-LIN50-UM",
            "availability": "https://schema.org/InStock",
            "category": "Kitchen Sinks",
            "color": "Brushed steel",
            "material": "Stainless steel",
        }
    )


def test_full_product_body_html() -> None:
    descriptions = describe_with_template(full_product(), sku="BB-1001")
    assert descriptions.generator == "template"
    assert descriptions.body_html.startswith(
        "<p><strong>Linea 50 Undermount Sink</strong> by Kelso Steelworks, from our Kitchen Sinks range.</p>"
    )
    checker = parse_fragment(descriptions.body_html)
    assert checker.seen_tags.count("p") == 3  # intro + the two description paragraphs
    assert checker.seen_tags.count("ul") == 1
    text = "".join(checker.text)
    assert "Fits approx. 600 mm cabinets." in text
    for fact in (
        "Price: 249.00 GBP",
        "Availability: In stock",
        "GTIN: 5060123450017",
        "Colour: Brushed steel",
    ):
        assert fact in text


def test_every_value_is_escaped() -> None:
    product = ExtractedProduct(
        fields={
            "title": "<script>alert(1)</script> Sink",
            "brand": "Harrow & Finch",
            "description": 'Deep <img src=x onerror="alert(2)"> bowl.',
            "material": "<b>Steel</b>",
            "category": "Sinks > Belfast",
        }
    )
    body = describe_with_template(product, sku="X").body_html
    checker = parse_fragment(body)  # would fail on <script>, <img> or <b>
    text = "".join(checker.text)
    assert "<script>alert(1)</script> Sink" in text
    assert "Harrow & Finch" in text
    assert "&amp;" in body
    assert "&lt;script&gt;" in body


def test_features_cover_present_fields_and_three_description_sentences() -> None:
    features = describe_with_template(full_product(), sku="BB-1001").features
    assert features == [
        "Brand: Kelso Steelworks",
        "Material: Stainless steel",
        "Colour: Brushed steel",
        "Category: Kitchen Sinks",
        "GTIN: 5060123450017",
        "MPN: LIN50UM",
        "A deep single-bowl sink pressed from 1.2 mm steel.",
        "Tight corner radii make it easy to wipe out.",
        "Sound-deadening pads keep it quiet.",
    ]


def test_missing_fields_are_left_out() -> None:
    product = ExtractedProduct(fields={"title": "Oak Board", "brand": "", "price": "45.00"})
    descriptions = describe_with_template(product, sku="BB-1008")
    assert descriptions.features == []
    assert (
        descriptions.body_html
        == "<p><strong>Oak Board</strong>.</p>\n<ul><li><strong>Price:</strong> 45.00</li></ul>"
    )


def test_an_empty_product_still_gets_a_description() -> None:
    descriptions = describe_with_template(ExtractedProduct(), sku="BB-1099")
    assert descriptions.body_html == "<p><strong>Product BB-1099</strong>.</p>"
    assert descriptions.features == []
    assert descriptions.care_instructions == GENERIC_CARE


def test_brand_already_in_the_title_is_not_repeated() -> None:
    product = ExtractedProduct(fields={"title": "Kelso Linea 50", "brand": "Kelso"})
    body = describe_with_template(product, sku="X").body_html
    assert body == "<p><strong>Kelso Linea 50</strong>.</p>\n<ul><li><strong>Brand:</strong> Kelso</li></ul>"


def test_list_fields_are_joined() -> None:
    product = ExtractedProduct(fields={"title": "Tap", "category": ["Home", "Kitchen Taps"]})
    descriptions = describe_with_template(product, sku="X")
    assert "from our Kitchen Taps range" in descriptions.body_html
    assert "Category: Home > Kitchen Taps" in descriptions.features


def test_long_or_fragmentary_sentences_are_not_features() -> None:
    description = "Great. " + "Very long sentence " * 20 + ". Fits well here."
    product = ExtractedProduct(fields={"description": description})
    assert describe_with_template(product, sku="X").features == ["Fits well here."]


@pytest.mark.parametrize(
    ("fields", "keyword"),
    [
        ({"material": "Stainless steel"}, "grain"),
        ({"material": "Ceramic (fireclay)"}, "glaze"),
        ({"material": "Granite composite"}, "limescale"),
        ({"material": "Solid oak"}, "food-safe mineral oil"),
        ({"material": "100% cotton"}, "Machine wash"),
        ({"material": "Full-grain leather"}, "leather conditioner"),
        ({"material": "Tempered glass"}, "glass cleaner"),
        ({"material": "Copper"}, "patina"),
        ({"title": "Pull-Out Spray Tap", "category": "Kitchen Taps"}, "descalers"),
        ({"title": "Corner sink", "category": "Utility"}, "scourers"),
    ],
)
def test_care_instructions_follow_material_and_category(fields: dict[str, str], keyword: str) -> None:
    assert keyword in describe_with_template(ExtractedProduct(fields=dict(fields)), sku="X").care_instructions


def test_material_beats_title_keywords() -> None:
    product = ExtractedProduct(fields={"title": "Ceramic-look Sink", "material": "Granite composite"})
    assert "limescale" in describe_with_template(product, sku="X").care_instructions


def test_unknown_materials_get_the_generic_advice() -> None:
    product = ExtractedProduct(fields={"title": "Gift card", "material": "Paper"})
    assert describe_with_template(product, sku="X").care_instructions == GENERIC_CARE


def test_same_input_same_output() -> None:
    assert describe_with_template(full_product(), sku="A") == describe_with_template(full_product(), sku="A")


async def test_template_describer_implements_the_protocol() -> None:
    describer: Describer = TemplateDescriber()
    result = await describer.describe(full_product(), sku="BB-1001")
    assert result == describe_with_template(full_product(), sku="BB-1001")
