"""Structured-data extraction: JSON-LD, microdata and OpenGraph as real shops write them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wipsvc.adapters.base import FetchedPage
from wipsvc.adapters.builtin_extractor import MAIN_TEXT_LIMIT, StructuredDataExtractor, extract_structured
from wipsvc.domain.errors import StepError
from wipsvc.domain.products import ExtractedProduct

BASE_URL = "https://shop.example/products/oak-chair?variant=2"


def page_with_json_ld(*blocks: Any, body: str = "") -> str:
    scripts = "".join(f'<script type="application/ld+json">{json.dumps(block)}</script>' for block in blocks)
    return f"<!doctype html><html><head><title>Shop</title>{scripts}</head><body>{body}</body></html>"


def fetched(html: str, url: str = BASE_URL) -> FetchedPage:
    return FetchedPage(url=url, status_code=200, content_type="text/html", text=html)


def found_sources(product: ExtractedProduct) -> set[str]:
    """The sources of the fields found ("not found" marks the key fields that were not)."""
    return {source for source in product.sources.values() if source != "not found"}


GRAPH_PAGE = page_with_json_ld(
    {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite", "name": "Example Shop", "url": "https://shop.example/"},
            {"@type": "BreadcrumbList", "itemListElement": []},
            {
                "@type": ["Product", "Thing"],
                "name": "Oak Chair &amp; Cushion",
                "description": "A sturdy chair.\n\nSolid oak.",
                "brand": {"@type": "Brand", "name": "Woodworks"},
                "image": [
                    {"@type": "ImageObject", "url": "/media/chair-front.jpg"},
                    "media/chair-side.jpg",
                    "https://cdn.example/chair-back.jpg",
                ],
                "gtin13": 4006381333931,
                "mpn": "OC-2024",
                "sku": "SKU-42",
                "color": "Natural",
                "material": "Oak",
                "category": "Furniture > Chairs",
                "offers": {
                    "@type": "AggregateOffer",
                    "lowPrice": "1,299.00",
                    "highPrice": "1,499.00",
                    "priceCurrency": "EUR",
                    "availability": "https://schema.org/InStock",
                },
                "isSimilarTo": {"@type": "Product", "name": "Pine Chair"},
            },
        ],
    }
)


def test_json_ld_graph_with_aggregate_offer() -> None:
    product = extract_structured(GRAPH_PAGE, BASE_URL)
    assert product.fields == {
        "title": "Oak Chair & Cushion",
        "brand": "Woodworks",
        "price": "1299.00",
        "currency": "EUR",
        "description": "A sturdy chair.\n\nSolid oak.",
        "image_url": "https://shop.example/media/chair-front.jpg",
        "images": [
            "https://shop.example/media/chair-front.jpg",
            "https://shop.example/products/media/chair-side.jpg",
            "https://cdn.example/chair-back.jpg",
        ],
        "gtin": "4006381333931",
        "mpn": "OC-2024",
        "sku": "SKU-42",
        "availability": "InStock",
        "category": "Furniture > Chairs",
        "color": "Natural",
        "material": "Oak",
    }
    assert found_sources(product) == {"json-ld"}


def test_product_group_takes_its_first_variants_offer() -> None:
    html = page_with_json_ld(
        {
            "@context": "https://schema.org",
            "@type": "ProductGroup",
            "name": "Linen Shirt",
            "brand": "Atelier",
            "hasVariant": [
                {
                    "@type": "Product",
                    "name": "Linen Shirt - S",
                    "image": "/img/shirt-s.jpg",
                    "offers": [
                        {"@type": "Offer", "price": 49, "priceCurrency": "GBP", "availability": "OutOfStock"}
                    ],
                },
                {"@type": "Product", "name": "Linen Shirt - M", "offers": {"price": "59"}},
            ],
        }
    )
    product = extract_structured(html, BASE_URL)
    assert product.fields["title"] == "Linen Shirt"
    assert product.fields["brand"] == "Atelier"
    assert product.fields["price"] == "49.00"
    assert product.fields["currency"] == "GBP"
    assert product.fields["availability"] == "OutOfStock"
    assert product.fields["image_url"] == "https://shop.example/img/shirt-s.jpg"


def test_offer_list_and_price_specification() -> None:
    html = page_with_json_ld(
        {"@type": "Organization", "name": "Example Shop"},
        {
            "@context": "http://schema.org",
            "@type": "Product",
            "name": "Desk Lamp",
            "offers": [
                {"@type": "Offer", "url": "https://shop.example/lamp"},
                {
                    "@type": "Offer",
                    "priceSpecification": {
                        "@type": "UnitPriceSpecification",
                        "price": 35.5,
                        "priceCurrency": "USD",
                    },
                },
            ],
        },
    )
    product = extract_structured(html, BASE_URL)
    assert product.fields["price"] == "35.50"
    assert product.fields["currency"] == "USD"


MICRODATA_PAGE = """<!doctype html><html><head><title>Teapot | Shop</title></head><body>
<div itemscope itemtype="https://schema.org/Product">
  <h1 itemprop="name">Cast Iron Teapot</h1>
  <img itemprop="image" src="/img/teapot.jpg" alt="">
  <div itemprop="brand" itemscope itemtype="https://schema.org/Brand">
    <span itemprop="name">Iwachu</span>
  </div>
  <span itemprop="gtin8">96385074</span>
  <p itemprop="description">Keeps tea warm.</p>
  <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
    <meta itemprop="price" content="64.90"><meta itemprop="priceCurrency" content="EUR">
    <link itemprop="availability" href="https://schema.org/LimitedAvailability">
  </div>
</div></body></html>"""


def test_microdata_only_page() -> None:
    product = extract_structured(MICRODATA_PAGE, "https://shop.example/teapot")
    assert product.fields == {
        "title": "Cast Iron Teapot",
        "brand": "Iwachu",
        "price": "64.90",
        "currency": "EUR",
        "description": "Keeps tea warm.",
        "image_url": "https://shop.example/img/teapot.jpg",
        "images": ["https://shop.example/img/teapot.jpg"],
        "gtin": "96385074",
        "availability": "LimitedAvailability",
    }
    assert found_sources(product) == {"microdata"}
    assert product.sources["mpn"] == product.sources["sku"] == "not found"


OPENGRAPH_PAGE = """<!doctype html><html><head>
<meta property="og:type" content="product">
<meta property="og:title" content="Wool Blanket">
<meta property="og:description" content="Warm and soft.">
<meta property="og:image" content="../images/blanket.jpg">
<meta property="product:price:amount" content="89,95">
<meta property="product:price:currency" content="EUR">
<meta property="product:brand" content="Highland Mills">
</head><body><h1>Wool Blanket</h1></body></html>"""


def test_opengraph_only_page() -> None:
    product = extract_structured(OPENGRAPH_PAGE, "https://shop.example/home/blanket")
    assert product.fields == {
        "title": "Wool Blanket",
        "description": "Warm and soft.",
        "image_url": "https://shop.example/images/blanket.jpg",
        "images": ["https://shop.example/images/blanket.jpg"],
        "price": "89.95",
        "currency": "EUR",
        "brand": "Highland Mills",
    }
    assert found_sources(product) == {"opengraph"}


def test_sources_follow_priority_field_by_field() -> None:
    json_ld = {"@context": "https://schema.org", "@type": "Product", "name": "JSON-LD Title", "sku": "J-1"}
    head_extras = (
        f'<script type="application/ld+json">{json.dumps(json_ld)}</script>'
        '<meta property="og:title" content="OG title">'
        '<meta property="product:price:currency" content="SEK">'
        '<meta property="og:description" content="From OpenGraph.">'
    )
    html = MICRODATA_PAGE.replace("</head>", head_extras + "</head>").replace(
        '<p itemprop="description">Keeps tea warm.</p>', ""
    )
    product = extract_structured(html, "https://shop.example/teapot")
    assert (product.fields["title"], product.sources["title"]) == ("JSON-LD Title", "json-ld")
    assert (product.fields["sku"], product.sources["sku"]) == ("J-1", "json-ld")
    assert (product.fields["brand"], product.sources["brand"]) == ("Iwachu", "microdata")
    assert (product.fields["currency"], product.sources["currency"]) == ("EUR", "microdata")
    assert (product.fields["description"], product.sources["description"]) == ("From OpenGraph.", "opengraph")


def test_relative_image_urls_are_joined_to_the_page_url() -> None:
    html = page_with_json_ld(
        {
            "@type": "Product",
            "name": "Vase",
            "image": [
                "data:image/png;base64,AAAA",
                {"@type": "ImageObject", "contentUrl": "//cdn.shop.example/vase.png"},
                "/a/b/../b/vase-detail.png",
            ],
        }
    )
    product = extract_structured(html, "https://shop.example/a/b/vase")
    assert product.fields["images"] == [
        "https://cdn.shop.example/vase.png",
        "https://shop.example/a/b/vase-detail.png",
    ]

    text_image = page_with_json_ld({"@type": "Product", "name": "Vase", "image": "vase-2.png"})
    product = extract_structured(text_image, "https://shop.example/a/b/vase")
    assert product.fields["image_url"] == "https://shop.example/a/b/vase-2.png"


def test_a_malformed_json_ld_block_does_not_hide_the_others() -> None:
    good = json.dumps(
        {"@type": "Product", "name": "Stool", "offers": {"price": "20", "priceCurrency": "EUR"}}
    )
    html = (
        '<html><head><script type="application/ld+json">{"@type": "Organization", broken</script>'
        f'<script type="application/ld+json">{good}</script></head><body></body></html>'
    )
    product = extract_structured(html, BASE_URL)
    assert product.fields["title"] == "Stool"
    assert product.sources["title"] == "json-ld"


def test_xhtml_with_an_xml_declaration() -> None:
    html = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head>'
        '<meta property="og:title" content="Crème Brûlée Set"/></head><body></body></html>'
    )
    assert extract_structured(html, BASE_URL).fields["title"] == "Crème Brûlée Set"


def test_main_text_comes_from_the_page_body_and_is_capped() -> None:
    paragraphs = "".join(
        f"<p>This handmade oak chair, number {n}, is finished with natural oil and wax. {'Oak. ' * 60}</p>"
        for n in range(100)
    )
    html = page_with_json_ld({"@type": "Product", "name": "Chair"}, body=f"<article>{paragraphs}</article>")
    product = extract_structured(html, BASE_URL)
    assert product.main_text.startswith("This handmade oak chair")
    assert len(product.main_text) == MAIN_TEXT_LIMIT


@pytest.mark.parametrize(
    ("price", "expected"),
    [("1,299.00", "1299.00"), (1299, "1299.00"), ("1.299,00 €", "1299.00"), ("€ 12,5", "12.50"),
     ("1,299", "1299.00"), (19.9, "19.90"), ("0.125", "0.125"), ("10 - 20", ""), ("call us", "")],
)  # fmt: skip
def test_prices_become_plain_decimals(price: Any, expected: str) -> None:
    html = page_with_json_ld({"@type": "Product", "name": "Item", "offers": {"price": price}})
    assert extract_structured(html, BASE_URL).fields.get("price", "") == expected


def test_a_bare_html_page_only_yields_an_html_title() -> None:
    html = "<html><head><title>Contact us | Shop</title></head><body><h1>Contact us</h1></body></html>"
    product = extract_structured(html, BASE_URL)
    assert product.fields == {"title": "Contact us"}
    assert found_sources(product) == {"html"}


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("", "no title (no <h1>, og:title or <title>)"),
        (
            "<html><head><title>Contact</title></head><body>Call 0161 496 0000</body></html>",
            "a title but no price, buy button, stock state, SKU/GTIN/MPN or product data",
        ),
    ],
)
async def test_extractor_refuses_a_page_without_a_product(html: str, reason: str) -> None:
    with pytest.raises(StepError) as caught:
        await StructuredDataExtractor().extract(fetched(html), sku="SKU-1")
    assert caught.value.message == f"no product data found on {BASE_URL}: no product on the page: {reason}"
    assert caught.value.transient is False


async def test_extractor_returns_structured_product() -> None:
    product = await StructuredDataExtractor().extract(fetched(OPENGRAPH_PAGE), sku="SKU-1")
    assert product.fields["title"] == "Wool Blanket"
    assert product.sources["title"] == "opengraph"
