"""What a shopper sees: the price next to the product's title, stock messages, the buy button, the brand.

Used when structured data and inline state lack a field. A price is taken from an element
marked as a price (class, id or ``data-price``) that sits closest to the page's ``<h1>``,
skipping struck-through and "was" prices; stock comes from a stock message near the title,
else from an enabled add-to-cart control; the brand from a "by X" line under the title or a
"Brand: X" label, GTIN and MPN from their labels (:mod:`wipsvc.extraction.labels`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wipsvc.extraction.availability import IN_STOCK, from_message
from wipsvc.extraction.brand import clean_brand
from wipsvc.extraction.document import HtmlTree, Page
from wipsvc.extraction.labels import labelled_values
from wipsvc.extraction.prices import parse_amount, shown_currency
from wipsvc.extraction.rules import SiteRule
from wipsvc.extraction.text import clean_text

# Marks (class, id, name, data-action) of price elements, stock messages and buy buttons.
_PRICE_MARK = re.compile(r"price|prix|preis|precio|preco|prezzo|cena|cijena|hinta|pris|deal", re.IGNORECASE)
_STOCK_MARK = re.compile(r"stock|availab|dispon|lager|verfueg|delivery-status", re.IGNORECASE)
_CART_MARK = re.compile(
    r"add[-_]?to[-_]?(?:cart|basket|bag)|buy[-_]?(?:now|btn|button)|btn[-_]?(?:cart|buy)|cart[-_]?(?:button|add)|"
    r"button[-_]cart|add[-_]?cart",
    re.IGNORECASE,
)
_CART_TAGS = frozenset({"button", "input", "a", "div", "span"})
# Classes of controls whose text then says whether they buy: "btn", "button", "cta", "buy", "order".
_CONTROL_MARK = re.compile(r"btn|button|cta|buy|cart|basket|order|purchase", re.IGNORECASE)
_SKIPPED_TAGS = frozenset({"script", "style", "meta", "link", "option", "noscript", "head", "title"})
_CART_TEXT = re.compile(
    r"^(add to (cart|basket|bag|trolley)|buy now|buy it now|in den (warenkorb|einkaufswagen)|"
    r"ajouter au panier|"
    r"aggiungi al carrello|añadir al carrito|agregar al carrito|comprar|adicionar ao carrinho|do koszyka|"
    r"dodaj do koszyka|do košíku|vložit do košíku|kosárba|lisää ostoskoriin|i varukorgen|læg i kurv|"
    r"legg i handlekurv|in winkelwagen|в корзину|купить|naroči|в кошик|カートに入れる|購物車|加入購物車|"
    r"장바구니|"
    r"أضف إلى|הוסף לסל|sepete ekle|kupi|košarico|u košaricu|pridať do košíka|kaufen|acheter)",
    re.IGNORECASE,
)
# Classes and ids of prices a shop no longer asks, or of figures that are not the product's price.
_NOT_THE_PRICE = re.compile(
    r"old|was|strike|crossed|compare|rrp|uvp|msrp|before|previous|original|list-?price|saving|save|"
    r"discount|unit|instal|monthly|per-|shipping|delivery|tax|points|rating|review|filter|slider|range",
    re.IGNORECASE,
)
_STRUCK_TAGS = frozenset({"del", "s", "strike", "script", "style", "noscript"})
_BYLINE = re.compile(r"^(?:by|von|par|door|av)\s+(\S.{0,58})$", re.IGNORECASE)
_LISTING_CARDS = 4  # prices of one kind beside a title that make a grid of products
_MAX_LEVELS = 8  # how far up from the <h1> a price may sit: the product's own block, not the page


@dataclass(slots=True)
class VisibleFindings:
    price: str = ""
    currency_shown: str = ""
    availability: str = ""
    brand: str = ""
    gtin: str = ""
    mpn: str = ""
    buy_control: bool = False  # an enabled buy button of this product (not a grid of them)
    stock_message: bool = False  # the availability comes from a stock message the page shows


def visible_fields(page: Page, rules: list[SiteRule]) -> VisibleFindings:
    found = VisibleFindings()
    heading = _title_element(page)
    # The title's block and its parents up to _MAX_LEVELS, short of <body>: the whole page is not "near".
    anchors = list(heading.iterancestors())[:_MAX_LEVELS] if heading is not None else []
    anchors = anchors[: next((i for i, a in enumerate(anchors) if a.tag in ("body", "html")), len(anchors))]
    for rule in rules:
        if not found.price:
            found.price, found.currency_shown = _first_price(_select(page.tree, rule.price))
        found.availability = found.availability or _first_message(_select(page.tree, rule.availability))
        found.brand = found.brand or next(
            (b for e in _select(page.tree, rule.brand) if (b := clean_brand(_text(e)))), ""
        )
    prices, stock, carts = _marked_elements(page.tree)
    if not found.price and anchors and not any(rule.price_only_from_rule for rule in rules):
        candidates = [e for e in prices if not _is_struck(e)]
        ranked = _nearest_with_levels(candidates, anchors, rank=_marked_as_other_figure)
        if not _is_listing(ranked):
            found.price, found.currency_shown = _first_price(element for _, element in ranked)
    can_buy = _has_buy_control(carts)
    # As a sign of a product page: a buy button in the title's block, else anywhere unless the
    # buttons form a grid (a category page).
    near = _nearest(carts, anchors) if anchors else []
    controls = near if _has_buy_control(near) else carts
    found.buy_control = _has_buy_control(controls) and not _is_listing([(0, c) for c in controls])
    if not found.availability:
        message = _first_message(_nearest(stock, anchors)) if anchors else ""
        # Shops keep "unavailable" labels in their templates for other delivery options or
        # sizes; an enabled buy button says the product itself can be bought.
        found.availability = IN_STOCK if can_buy else message
        found.stock_message = bool(message) and not can_buy
    else:
        found.stock_message = True
    labelled = labelled_values(page.tree)
    found.gtin, found.mpn = labelled.get("gtin", ""), labelled.get("mpn", "")
    found.brand = (
        found.brand or (_byline_brand(heading) if heading is not None else "") or labelled.get("brand", "")
    )
    return found


def _byline_brand(heading: HtmlTree) -> str:
    """ "by X" right under the title."""
    parent = heading.getparent()
    lines = [heading.getnext(), parent.getnext() if parent is not None else None]
    for element in lines:
        if element is not None and isinstance(element.tag, str):
            match = _BYLINE.match(_text(element))
            if match and (brand := clean_brand(match.group(1))):
                return brand
    return ""


def _marked_elements(tree: HtmlTree) -> tuple[list[HtmlTree], list[HtmlTree], list[HtmlTree]]:
    """One pass over the document: elements marked as prices, as stock messages, as buy buttons."""
    prices: list[HtmlTree] = []
    stock: list[HtmlTree] = []
    carts: list[HtmlTree] = []
    for element in tree.iter():
        tag = element.tag
        if not isinstance(tag, str) or tag in _SKIPPED_TAGS:
            continue
        attributes = element.attrib
        marks = f"{attributes.get('class', '')} {attributes.get('id', '')}"
        if len(marks) > 1:
            if _PRICE_MARK.search(marks):
                prices.append(element)
            if _STOCK_MARK.search(marks):
                stock.append(element)
        if "data-price" in attributes or "data-price-amount" in attributes:
            prices.append(element)
        if tag in _CART_TAGS:
            action = f"{marks} {attributes.get('name', '')} {attributes.get('data-action', '')}"
            if len(action) > 3 and _CART_MARK.search(action):
                carts.append(element)
            elif tag in ("button", "input") or _CONTROL_MARK.search(marks):
                text = element.text_content() if tag != "input" else attributes.get("value", "")
                if len(text) < 60 and _CART_TEXT.match(clean_text(text)):
                    carts.append(element)
    return prices, stock, carts


def _title_element(page: Page) -> HtmlTree | None:
    """The element that shows the product's name: the <h1>, else one whose text is the og:title."""
    if page.heading_element is not None:
        return page.heading_element
    title = clean_text(page.meta.get("og:title")) or page.html_title
    for part in sorted(re.split(r"\s+[-|–—:]\s+|｜", title), key=len, reverse=True):
        if len(part) >= 4 and '"' not in part:
            found = page.tree.xpath(f'//body//*[normalize-space(text())="{part}"]')
            if found:
                return found[0]
    return None


def _select(tree: HtmlTree, xpaths: Iterable[str]) -> list[HtmlTree]:
    return [element for xpath in xpaths for element in tree.xpath(xpath)]


def _first_price(elements: Iterable[HtmlTree]) -> tuple[str, str]:
    for element in elements:
        if isinstance(element, str):  # an attribute selected by a rule
            if amount := parse_amount(element):
                return amount, ""
            continue
        for attribute in ("data-price-amount", "data-price", "content"):
            raw = element.get(attribute)
            if raw and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", raw) and (amount := parse_amount(raw)):
                return amount, shown_currency(_text(element))
        text = _text(element)
        # A percentage is a discount, not a price.
        if len(text) <= 60 and re.search(r"\d", text) and "%" not in text and (amount := parse_amount(text)):
            return amount, shown_currency(text)
    return "", ""


def _first_message(elements: Iterable[HtmlTree]) -> str:
    for element in elements:
        text = _text(element)
        if text and len(text) <= 200 and (state := from_message(text)):
            return state
    return ""


def _nearest(elements: list[HtmlTree], anchors: list[HtmlTree], *, rank: Any = None) -> list[HtmlTree]:
    """``elements`` that share a close ancestor with the title, closest first, then by ``rank``
    (lower first), then in page order."""
    return [element for _, element in _nearest_with_levels(elements, anchors, rank=rank)]


def _nearest_with_levels(
    elements: list[HtmlTree], anchors: list[HtmlTree], *, rank: Any = None
) -> list[tuple[int, HtmlTree]]:
    ranked: list[tuple[int, int, int, HtmlTree]] = []
    for order, element in enumerate(elements):
        ancestors = list(element.iterancestors())
        level = next((i for i, anchor in enumerate(anchors) if any(a is anchor for a in ancestors)), None)
        if level is not None:
            ranked.append((level, rank(element) if rank else 0, order, element))
    return [(entry[0], entry[-1]) for entry in sorted(ranked, key=lambda entry: entry[:3])]


def _is_listing(ranked: list[tuple[int, HtmlTree]]) -> bool:
    """Whether the prices closest to the title are a grid of product cards (a category page):
    several prices of one kind at that distance."""
    if not ranked:
        return False
    closest = ranked[0][0]
    kinds = Counter(element.get("class") or "" for level, element in ranked if level == closest)
    return any(kind and count >= _LISTING_CARDS for kind, count in kinds.items())


def _is_struck(element: HtmlTree) -> bool:
    """Inside <del>, <s> or <strike>: a price the shop no longer asks."""
    return any(node.tag in _STRUCK_TAGS for node in [element, *element.iterancestors()][:8])


def _marked_as_other_figure(element: HtmlTree) -> int:
    """1 when the element or a close ancestor is marked as a "was" price, a tax or a unit price.

    Such a price is taken only when no unmarked one sits as close to the title: some themes
    mark the live price "old" too.
    """
    for node in [element, *element.iterancestors()][:3]:
        if _NOT_THE_PRICE.search(f"{node.get('class') or ''} {node.get('id') or ''}"):
            return 1
    return 0


def _text(element: HtmlTree) -> str:
    """The element's text without struck-through or "was" parts inside it."""
    parts: list[str] = []
    stack: list[tuple[HtmlTree, bool]] = [(element, True)]
    while stack:
        node, is_root = stack.pop()
        if isinstance(node, str):
            parts.append(node)
            continue
        if not isinstance(node.tag, str):
            continue
        skip = not is_root and (node.tag in _STRUCK_TAGS or _NOT_THE_PRICE.search(node.get("class") or ""))
        if not is_root and node.tail:
            stack.append((node.tail, False))
        if skip:
            continue
        children = list(node)
        for child in reversed(children):
            stack.append((child, False))
        if node.text:
            stack.append((node.text, False))
    return clean_text(" ".join(parts))


def _has_buy_control(controls: list[HtmlTree]) -> bool:
    return any(not _is_disabled(control) for control in controls)


def _is_disabled(element: HtmlTree) -> bool:
    classes = (element.get("class") or "").lower()
    return (
        element.get("disabled") is not None
        or (element.get("aria-disabled") or "").lower() == "true"
        or "disabled" in classes
        or "hidden" in classes.split()
    )
