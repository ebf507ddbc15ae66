"""Selectors for shop platforms and very large retailers, all in one place.

A rule applies when the page's own content carries its marker (DOM ids, a platform's script
or asset names) — never because of the address the page was fetched from — and then its
selectors are tried before the generic search of the visible page. Selectors are XPath.
"""

from __future__ import annotations

from dataclasses import dataclass

from wipsvc.extraction.document import HtmlTree


@dataclass(frozen=True, slots=True)
class SiteRule:
    name: str
    marker: str  # XPath that matches only on this platform's or retailer's product pages
    price: tuple[str, ...] = ()
    availability: tuple[str, ...] = ()
    brand: tuple[str, ...] = ()
    # The buy box is the only place this page shows its price: when the selectors find none
    # (an unavailable product), the generic search must not take a recommendation's price.
    price_only_from_rule: bool = False


RULES: tuple[SiteRule, ...] = (
    SiteRule(
        name="Amazon product page (#dp-container / #ppd)",
        marker='//*[@id="dp-container" or @id="ppd"]',
        price=(
            '//*[@id="corePrice_feature_div" or @id="corePriceDisplay_desktop_feature_div"'
            ' or @id="corePrice_desktop" or @id="apex_desktop"]'
            '//span[contains(@class,"a-price")][not(contains(@class,"a-text-price"))]'
            '/span[contains(@class,"a-offscreen")]',
            '//*[@id="priceblock_dealprice" or @id="priceblock_saleprice" or @id="priceblock_ourprice"]',
            '//*[@id="price_inside_buybox" or @id="newBuyBoxPrice" or @id="kindle-price"]',
            '//*[@id="buybox"]//span[contains(@class,"a-color-price")]',
            '//*[@id="tmmSwatches"]//li[contains(@class,"selected")]'
            '//span[contains(@class,"a-color-price") or contains(@class,"a-color-secondary")]',
        ),
        availability=('//*[@id="availability"]', '//*[@id="outOfStock"]'),
        brand=('//a[@id="bylineInfo"]', '//*[@id="brand"]'),
        price_only_from_rule=True,
    ),
    SiteRule(
        name="eBay listing (#prcIsum / .x-price-primary)",
        marker='//*[@id="prcIsum" or @id="mm-saleDscPrc" or @id="itemTitle"]'
        ' | //*[contains(@class,"x-price-primary")]',
        price=('//*[@id="prcIsum"]', '//*[@id="mm-saleDscPrc"]', '//*[contains(@class,"x-price-primary")]'),
        availability=('//*[@id="qtySubTxt"]',),
    ),
    SiteRule(
        name="WooCommerce (p.price with ins/del)",
        marker='//body[contains(@class,"woocommerce")]',
        price=('//*[contains(@class,"summary")]//p[contains(@class,"price")]',),
        availability=('//*[contains(@class,"summary")]//p[contains(@class,"stock")]',),
    ),
    SiteRule(
        name="Magento (price box with data-price-amount)",
        marker='//*[@data-role="priceBox"]',
        price=(
            '//*[contains(@class,"product-info-main")]//*[@data-price-type="finalPrice"]/@data-price-amount',
        ),
    ),
)

# Markers of Shopify shops, whose product JSON counts prices in cents.
SHOPIFY_MARKERS = ("cdn.shopify.com", "Shopify.shop", "shopify-section")


def matching_rules(tree: HtmlTree) -> list[SiteRule]:
    return [rule for rule in RULES if tree.xpath(rule.marker)]


def is_shopify(html: str) -> bool:
    return any(marker in html for marker in SHOPIFY_MARKERS)
