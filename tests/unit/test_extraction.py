"""The built-in extractor's techniques, each on a small hand-written page."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wipsvc.extraction import extract
from wipsvc.extraction.brand import clean_brand
from wipsvc.extraction.labels import valid_gtin
from wipsvc.extraction.prices import currency_code, parse_amount

URL = "https://shop.example/p/42"


def page(head: str = "", body: str = "", *, lang: str = "en") -> str:
    return (
        f'<!doctype html><html lang="{lang}"><head><title>Shop</title>{head}</head><body>{body}</body></html>'
    )


def json_ld(data: Any) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


@pytest.mark.parametrize(
    ("shown", "amount"),
    [
        ("1.299,00 €", "1299.00"), ("1,299.00", "1299.00"), ("$24.990", "24990.00"), ("24.990", "24.990"),
        ("30,000원~", "30000.00"),
        ("EUR110.00", "110.00"), ("71,91 € 79,90 €", "71.91"), ("499€ 499€", "499.00"), ("£49", "49.00"),
        ("1 299,00 zł", "1299.00"), ("0.125", "0.125"), (1299, "1299.00"), ("10 - 20", ""), ("call us", ""),
    ],
)  # fmt: skip
def test_prices_are_read_as_people_write_them(shown: Any, amount: str) -> None:
    assert parse_amount(shown) == amount


@pytest.mark.parametrize(
    ("shown", "language", "code"),
    [("€", "", "EUR"), ("Lei", "ro", "RON"), ("zł", "pl", "PLN"), ("$", "en-US", "USD"),
     ("$", "es-AR", "ARS"), ("kr", "nb-NO", "NOK"), ("kr", "sv-SE", "SEK"), ("원~", "ko", "KRW"),
     ("тг.", "ru", "KZT"), ("GBP", "", "GBP"), ("eur", "", "EUR"), ("RUR", "ru", "RUB"),
     ("¤", "", "")],
)  # fmt: skip
def test_currencies_become_iso_codes(shown: str, language: str, code: str) -> None:
    assert currency_code(shown, language) == code


def test_a_lower_case_product_nested_in_a_graph_under_another_type() -> None:
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite", "name": "Shop"},
            {
                "@type": "WebPage",
                "mainEntity": {
                    "@type": "product",
                    "name": "Oak Stool",
                    "brand": {"@type": "Brand", "value": "Woodworks"},
                    "offers": {"@type": "Offer", "price": "49.90", "priceCurrency": "EUR",
                               "availability": "http://schema.org/InStock"},
                },
            },
        ],
    }  # fmt: skip
    result = extract(page(json_ld(graph)), URL)
    assert result.fields["title"] == "Oak Stool"
    assert (result.fields["price"], result.fields["currency"]) == ("49.90", "EUR")
    assert result.fields["brand"] == "Woodworks"
    assert result.sources["price"] == "json-ld"
    assert result.is_product


def test_several_offers_give_the_sale_price_and_stock_if_any_offer_has_it() -> None:
    product = {
        "@type": "Product",
        "name": "Linen Shirt",
        "offers": [
            {"@type": "Offer", "price": "79.00", "priceCurrency": "GBP", "availability": "OutOfStock",
             "priceSpecification": {"@type": "UnitPriceSpecification", "priceType": "ListPrice",
                                    "price": "99"}},
            {"@type": "Offer", "price": "59.00", "priceCurrency": "GBP", "availability": "InStock"},
            {"@type": "Offer", "price": "99.00", "priceCurrency": "GBP", "priceType": "ListPrice"},
        ],
    }  # fmt: skip
    result = extract(page(json_ld(product)), URL)
    assert result.fields["price"] == "59.00"
    assert result.fields["availability"] == "InStock"


def test_one_product_per_size_counts_as_variants_of_one() -> None:
    sizes = [
        {"@type": "Product", "name": "Boots", "offers": {"price": "69.95", "availability": "OutOfStock"}},
        {"@type": "Product", "name": "Boots", "offers": {"price": "69.95", "availability": "InStock"}},
    ]
    assert extract(page(json_ld(sizes)), URL).fields["availability"] == "InStock"


def test_opengraph_price_tags_anywhere_in_the_document() -> None:
    body = (
        '<h1>Blue Vase</h1><meta property="og:price:amount" content="1.299,00">'
        '<meta property="og:price:currency" content="EUR"><meta property="product:brand" content="Glassco">'
    )
    result = extract(page(body=body), URL)
    assert (result.fields["price"], result.fields["currency"]) == ("1299.00", "EUR")
    assert result.fields["brand"] == "Glassco"
    assert result.sources["price"] == "opengraph"


def test_a_microdata_price_showing_two_prices_is_one_number() -> None:
    body = """<div itemscope itemtype="http://schema.org/Product"><h1 itemprop="name">Watch</h1>
      <span itemprop="brand">Marca: Casio</span>
      <div itemprop="offers" itemscope itemtype="http://schema.org/Offer">
        <span itemprop="price">71,91 € 79,90 €</span></div></div>"""
    result = extract(page(body=body), URL)
    assert (result.fields["price"], result.fields["currency"]) == ("71.91", "EUR")
    assert result.fields["brand"] == "Casio"


def test_a_visible_price_beside_the_title_skips_the_struck_through_list_price() -> None:
    body = """<header><div class="price">£1.00</div></header>
      <main><div class="product"><h1>Garden Hose 30 m</h1>
        <div class="price-box"><del class="price">£39.99</del> <span class="price was-price">£35.00</span>
          <span class="price">£24.99</span></div>
        <p class="stock">Only 3 left in stock</p>
        <button class="btn" type="submit">Add to basket</button></div>
        <ul class="related"><li><span class="price">£5.00</span></li></ul></main>"""
    result = extract(page(body=body), URL)
    assert (result.fields["price"], result.fields["currency"]) == ("24.99", "GBP")
    assert result.fields["availability"] == "InStock"
    assert result.sources["price"] == result.sources["availability"] == "page"
    assert result.is_product


def test_a_stock_message_says_out_of_stock() -> None:
    body = """<div><h1>Desk Lamp</h1><span class="product-price">€ 19,95</span>
      <div class="availability">Derzeit nicht verfügbar</div></div>"""
    result = extract(page(body=body, lang="de-DE"), URL)
    assert result.fields["availability"] == "OutOfStock"
    assert result.fields["price"] == "19.95"


def test_a_retailer_rule_chosen_by_the_page_content() -> None:
    body = """<div id="dp-container"><div id="centerCol"><h1 id="title">Potato Chips</h1>
        <a id="bylineInfo" href="/stores/acme">Visit the Acme Store</a>
        <div id="availability"><span>Currently unavailable.</span></div></div></div>
      <div id="recommendations"><span class="a-price"><span class="price">$3.99</span></span></div>"""
    result = extract(page(body=body), URL)
    assert result.fields["availability"] == "OutOfStock"
    assert result.fields["brand"] == "Acme"
    assert "price" not in result.fields  # the recommendation's price is not this product's
    assert result.is_product


def test_shopify_product_json_counts_cents() -> None:
    product = {"product": {"title": "Trail Shoe", "vendor": "Peak", "variants": [
        {"price": 12900, "available": False, "sku": "TS-40"},
        {"price": 11900, "available": True, "sku": "TS-41"}]}}  # fmt: skip
    body = f"<h1>Trail Shoe</h1><script>var meta = {json.dumps(product)};</script>"
    head = '<link rel="preconnect" href="https://cdn.shopify.com">'
    result = extract(page(head, body), URL)
    assert result.fields["price"] == "119.00"
    assert result.fields["brand"] == "Peak"
    assert result.fields["availability"] == "InStock"
    assert result.sources["price"] == "inline-json"


def test_next_js_state_and_a_data_layer() -> None:
    state = {"props": {"pageProps": {"product": {"name": "Rain Jacket", "brand": {"name": "Nordkap"},
             "price": {"current": {"value": 89.5}}, "currency": "EUR", "inStock": True},
             "related": [{"name": "Umbrella", "price": 9}]}}}  # fmt: skip
    body = (
        f'<h1>Rain Jacket</h1><script id="__NEXT_DATA__" type="application/json">{json.dumps(state)}</script>'
    )
    result = extract(page(body=body), URL)
    assert (result.fields["price"], result.fields["currency"]) == ("89.50", "EUR")
    assert (result.fields["brand"], result.fields["availability"]) == ("Nordkap", "InStock")

    layer = (
        "dataLayer.push({ecommerce: {currencyCode: 'SEK', detail: {products: "
        "[{name: 'Wool Socks', price: '129.00', brand: 'Ull'}]}}});"
    )
    result = extract(page(body=f"<h1>Wool Socks</h1><script>{layer}</script>"), URL)
    assert (result.fields["price"], result.fields["currency"], result.fields["brand"]) == (
        "129.00",
        "SEK",
        "Ull",
    )


def test_woocommerce_variations() -> None:
    variations = [{"display_price": 25, "is_in_stock": False}, {"display_price": 22.5, "is_in_stock": True}]
    body = f"""<h1>Ceramic Mug</h1><form class="variations_form"
        data-product_variations='{json.dumps(variations)}'></form>"""
    result = extract(page(body=body), URL)
    assert (result.fields["price"], result.fields["availability"]) == ("22.50", "InStock")


@pytest.mark.parametrize(
    ("raw", "brand"),
    [("Brand: Acme", "Acme"), ("Marca: Roborock", "Roborock"), ("$metabrand", ""), ("{{ brand }}", ""),
     ({"@type": "Brand", "name": "Iwachu"}, "Iwachu"), ("Ver mais artigos da Marca: Roborock", "Roborock"),
     ("Visit the Ankerkraut Store", "Ankerkraut"), ("null", "")],
)  # fmt: skip
def test_brands_lose_labels_and_placeholders(raw: Any, brand: str) -> None:
    assert clean_brand(raw) == brand


def test_a_brand_label_in_a_specification_table() -> None:
    body = "<h1>Mower</h1><table><tr><td>Tootja</td><td><a href='/b'>Bosch</a></td></tr></table>"
    assert extract(page(body=body), URL).fields["brand"] == "Bosch"


def test_pages_without_a_product_are_not_products() -> None:
    notice = page(body="<h1>Sorry, this product is no longer available</h1><p>Call 0161 496 0000.</p>")
    assert not extract(notice, URL).is_product
    cards = "".join(
        f'<li><a href="/p/{n}">Sink {n}</a><span class="price">£{n}9.00</span></li>' for n in range(6)
    )
    category = page(body=f"<main><h1>Kitchen sinks</h1><ul>{cards}</ul></main>")
    result = extract(category, URL)
    assert "price" not in result.fields
    assert not result.is_product
    assert result.sources["price"] == "not found"


def test_a_by_line_under_the_title() -> None:
    body = "<div><h1>Trail Shoe</h1><p class='byline'>by Peak Outdoor</p><span class='price'>$89</span></div>"
    result = extract(page(body=body), URL)
    assert (result.fields["brand"], result.sources["brand"]) == ("Peak Outdoor", "page")


def test_rdfa_product() -> None:
    body = """<div vocab="http://schema.org/" typeof="Product"><h1 property="name">Tea Kettle</h1>
      <div property="brand" typeof="Brand"><span property="name">Kettleco</span></div>
      <div property="offers" typeof="Offer"><span property="price" content="34.50">34,50 €</span>
        <meta property="priceCurrency" content="EUR"><link property="availability" href="http://schema.org/InStock">
      </div></div>"""
    result = extract(page(body=body), URL)
    assert (result.fields["price"], result.fields["currency"], result.fields["brand"]) == (
        "34.50",
        "EUR",
        "Kettleco",
    )
    assert (result.fields["availability"], result.sources["price"]) == ("InStock", "rdfa")


def test_magento_price_box() -> None:
    body = """<div class="product-info-main"><h1 class="page-title">Garden Chair</h1>
      <div class="price-box" data-role="priceBox">
        <span data-price-type="oldPrice" data-price-amount="59"><span class="price">€59.00</span></span>
        <span data-price-type="finalPrice" data-price-amount="44.9"><span class="price">€44.90</span></span>
      </div></div>"""
    assert extract(page(body=body), URL).fields["price"] == "44.90"


def test_identifiers_from_their_labels() -> None:
    body = """<h1>Walkie Talkie</h1><ul id="detailBullets">
      <li><span class="a-text-bold">Item model number \u200f : \u200e</span><span>EUA1026P</span></li>
      <li><span class="a-text-bold">EAN</span><!-- --><span>4006381333931</span></li></ul>"""
    result = extract(page(body=body), URL)
    assert (result.fields["mpn"], result.fields["gtin"]) == ("EUA1026P", "4006381333931")
    assert result.sources["gtin"] == result.sources["mpn"] == "page"


@pytest.mark.parametrize(
    ("raw", "gtin"),
    [("4006381333931", "4006381333931"), ("4006381333932", ""), ("978-0-552-17374-2", "9780552173742"),
     ("0000000000000", ""), ("12345", ""), ("96385074", "96385074")],
)  # fmt: skip
def test_gtins_need_a_right_check_digit(raw: str, gtin: str) -> None:
    assert valid_gtin(raw) == gtin


def test_outside_text_loses_markup_and_control_characters() -> None:
    product = {
        "@type": "Product",
        "name": "Mug\x07 <b>XL</b>",
        "description": "<p>Holds 1 l.</p>\n<p>Oven-safe.</p>",
    }
    result = extract(page(json_ld(product)), URL)
    assert result.fields["title"] == "Mug XL"
    assert result.fields["description"] == "Holds 1 l.\nOven-safe."
