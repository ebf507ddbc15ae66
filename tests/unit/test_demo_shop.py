from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import extruct
import httpx
import pytest

from wipsvc.demo.shop import BROKEN_SKUS, DEMO_PAGES, DemoPage, SampleShop, build_shop_app, load_page

PAGE_IDS = [page.slug for page in DEMO_PAGES]
PRODUCT_PAGES = [page for page in DEMO_PAGES if page.sku not in BROKEN_SKUS]


@pytest.fixture(scope="module")
def shop() -> Iterator[SampleShop]:
    with SampleShop() as running:
        yield running


def structured_data(page: DemoPage, base_url: str) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = extruct.extract(
        load_page(page.slug), base_url=base_url, syntaxes=["json-ld", "microdata", "opengraph"]
    )
    return data


def json_ld_products(data: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    items = [node for item in data["json-ld"] for node in item.get("@graph", [item])]
    return [item for item in items if item.get("@type") == "Product"]


def test_products_lists_every_page_on_loopback(shop: SampleShop) -> None:
    products = shop.products()
    assert [sku for sku, _ in products] == [page.sku for page in DEMO_PAGES]
    assert len({sku for sku, _ in products}) == len(products)
    assert {sku for sku, _ in products} >= BROKEN_SKUS
    for _, url in products:
        parts = urlsplit(url)
        assert parts.scheme == "http"
        assert parts.hostname == "127.0.0.1"
        assert parts.port == urlsplit(shop.base_url).port


@pytest.mark.parametrize("page", DEMO_PAGES, ids=PAGE_IDS)
async def test_every_page_is_served_as_html(shop: SampleShop, page: DemoPage) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(shop.url_for(page))
    # The discontinued product is served with 200 too: only its content says it is gone.
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == load_page(page.slug)


async def test_index_links_every_page_and_unknown_pages_are_404(shop: SampleShop) -> None:
    async with httpx.AsyncClient(base_url=shop.base_url) as client:
        index = await client.get("/")
        missing = await client.get("/products/no-such-sink")
    assert index.status_code == 200
    for page in DEMO_PAGES:
        assert f'href="/products/{page.slug}"' in index.text
    assert missing.status_code == 404


def test_the_shop_has_the_promised_mix_of_markup() -> None:
    markups = [page.markup for page in DEMO_PAGES]
    assert markups.count("json-ld") >= 3
    assert markups.count("microdata") >= 2
    assert markups.count("opengraph") >= 2
    assert markups.count("none") == 1


@pytest.mark.parametrize("page", DEMO_PAGES, ids=PAGE_IDS)
def test_each_page_carries_only_its_declared_markup(page: DemoPage) -> None:
    data = structured_data(page, "http://127.0.0.1:1/products/" + page.slug)
    has_product_json_ld = bool(json_ld_products(data))
    has_product_microdata = any(item.get("type", "").endswith("/Product") for item in data["microdata"])
    has_product_opengraph = any(
        ("og:type", "product") in item.get("properties", []) for item in data["opengraph"]
    )
    assert has_product_json_ld == (page.markup == "json-ld")
    assert has_product_microdata == (page.markup == "microdata")
    assert has_product_opengraph == (page.markup == "opengraph")


def test_json_ld_pages_cover_graph_aggregate_offer_and_relative_images() -> None:
    raw = {page.slug: structured_data(page, "http://127.0.0.1:1/")["json-ld"] for page in DEMO_PAGES}
    assert any("@graph" in item for items in raw.values() for item in items)
    products = [product for items in raw.values() for product in json_ld_products({"json-ld": items})]
    assert any(product["offers"]["@type"] == "AggregateOffer" for product in products)
    assert any(
        isinstance(product["image"], list) and product["image"][0].startswith("/") for product in products
    )


def test_opengraph_pages_give_a_price_amount() -> None:
    for page in DEMO_PAGES:
        if page.markup == "opengraph":
            properties = dict(structured_data(page, "http://127.0.0.1:1/")["opengraph"][0]["properties"])
            assert float(properties["product:price:amount"]) > 0
            assert properties["product:price:currency"] == "GBP"


async def test_the_app_also_serves_in_process() -> None:
    transport = httpx.ASGITransport(app=build_shop_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.get(f"/products/{DEMO_PAGES[0].slug}")
    assert response.status_code == 200


def test_start_and_stop_lifecycle() -> None:
    shop = SampleShop()
    with pytest.raises(RuntimeError):
        _ = shop.base_url
    shop.start()
    try:
        with pytest.raises(RuntimeError):
            shop.start()
        assert httpx.get(shop.base_url + "/").status_code == 200
        url = shop.base_url
    finally:
        shop.stop()
    assert not shop.running
    shop.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/")


async def test_async_context_manager() -> None:
    async with SampleShop() as shop, httpx.AsyncClient() as client:
        response = await client.get(shop.base_url + "/")
    assert response.status_code == 200


@pytest.mark.parametrize("page", DEMO_PAGES, ids=PAGE_IDS)
async def test_structured_extraction_of_each_page(shop: SampleShop, page: DemoPage) -> None:
    extract = pytest.importorskip("wipsvc.adapters.builtin_extractor")
    async with httpx.AsyncClient() as client:
        response = await client.get(shop.url_for(page))
    product = extract.extract_structured(response.text, str(response.url))
    filled = product.filled()
    if page.sku in BROKEN_SKUS:
        assert "price" not in filled
    else:
        assert "title" in filled
        assert "price" in filled
