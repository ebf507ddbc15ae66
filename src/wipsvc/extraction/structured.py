"""Structured data read from the tree: JSON-LD blocks, microdata items and RDFa items.

Microdata and RDFa items come out in JSON-LD's shape (``{"@type": …, property: value}``), so
one schema.org reader (:mod:`wipsvc.extraction.schema`) serves all three syntaxes.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urljoin

import chompjs

from wipsvc.extraction.document import HtmlTree
from wipsvc.extraction.schema import Node

logger = logging.getLogger(__name__)

_COMMENT_WRAPPERS = re.compile(
    r"^\s*(?:<!--|//\s*<!\[CDATA\[|/\*\s*<!\[CDATA\[\s*\*/)|(?:-->|//\s*\]\]>|/\*\s*\]\]>\s*\*/)\s*$"
)
# Where microdata and RDFa keep a property's value instead of the element's text.
_LOOSE_PROPERTIES = frozenset(
    {"price", "lowPrice", "priceCurrency", "availability", "brand", "gtin", "gtin8", "gtin12", "gtin13",
     "gtin14", "mpn", "sku"}
)  # fmt: skip
_URL_PROPERTIES = frozenset(
    {"url", "image", "availability", "itemCondition", "sameAs", "logo", "thumbnailUrl", "contentUrl"}
)
_URL_ATTRIBUTES = {"a": "href", "link": "href", "area": "href", "img": "src", "source": "src", "video": "src"}


def json_ld_blocks(tree: HtmlTree) -> list[Any]:
    """Every JSON-LD block's data; a malformed block is repaired when it can be, else skipped."""
    items: list[Any] = []
    for script in tree.iter("script"):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        text = _COMMENT_WRAPPERS.sub("", script.text or "").strip()
        if not text:
            continue
        data = loads_leniently(text)
        if data is None:
            logger.debug("skipping a malformed JSON-LD block")
            continue
        items.extend(data if isinstance(data, list) else [data])
    return items


def loads_leniently(text: str) -> Any:
    """JSON, or a JavaScript object literal (trailing commas, single quotes); None if neither."""
    try:
        return json.loads(text, strict=False)
    except ValueError:
        pass
    try:
        return chompjs.parse_js_object(text)
    except (ValueError, TypeError):
        return None


def microdata_items(tree: HtmlTree, base_url: str) -> list[Node]:
    """Top-level microdata items (``itemscope`` not itself a property of another item)."""
    return [
        _read_item(element, base_url, "itemprop", _is_microdata_item, _microdata_type)
        for element in tree.xpath("//*[@itemscope][not(@itemprop)]")
    ]


def rdfa_items(tree: HtmlTree, base_url: str) -> list[Node]:
    """Top-level RDFa items (``typeof`` not itself the object of a ``property``)."""
    return [
        _read_item(element, base_url, "property", _is_rdfa_item, _rdfa_type)
        for element in tree.xpath("//*[@typeof][not(@property)]")
    ]


def loose_microdata(tree: HtmlTree, base_url: str) -> Node:
    """Offer properties (price, currency, stock, brand, identifiers) outside any item, as shops put
    them on a lone price ``<span>``; a lone ``name`` is too often a breadcrumb's to be the title."""
    node: Node = {}
    for element in tree.xpath("//*[@itemprop][not(ancestor-or-self::*[@itemscope])]"):
        for name in (element.get("itemprop") or "").split():
            if name in _LOOSE_PROPERTIES:
                node.setdefault(name, _value(element, base_url, name))
    return node


def _is_microdata_item(element: HtmlTree) -> bool:
    return element.get("itemscope") is not None


def _is_rdfa_item(element: HtmlTree) -> bool:
    return element.get("typeof") is not None


def _microdata_type(element: HtmlTree) -> list[str]:
    return (element.get("itemtype") or "").split()


def _rdfa_type(element: HtmlTree) -> list[str]:
    return (element.get("typeof") or "").split()


def _read_item(element: HtmlTree, base_url: str, prop_attr: str, is_item: Any, item_type: Any) -> Node:
    node: Node = {"@type": item_type(element)}
    stack = list(element)
    stack.reverse()
    while stack:
        child = stack.pop()
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        names = (child.get(prop_attr) or "").split()
        nested = is_item(child)
        if names:
            value = _read_item(child, base_url, prop_attr, is_item, item_type) if nested else None
            if value is not None and len(value) == 1 and child.get("content"):
                value = None  # an item with no properties of its own but a value: <meta itemscope content>
            for name in names:
                local = re.split(r"[/#:]", name)[-1]
                node.setdefault(local, []).append(
                    value if value is not None else _value(child, base_url, local)
                )
        if not nested:
            stack.extend(reversed(list(child)))
    return {
        key: value[0] if isinstance(value, list) and len(value) == 1 else value for key, value in node.items()
    }


def _value(element: HtmlTree, base_url: str, name: str = "url") -> str:
    content = element.get("content")
    if content is not None:
        return str(content)
    attribute = _URL_ATTRIBUTES.get(element.tag)
    # Shops put a product's name or brand on a link: its text is the value, not its address.
    if (
        attribute
        and element.get(attribute)
        and (name in _URL_PROPERTIES or not element.text_content().strip())
    ):
        return urljoin(base_url, str(element.get(attribute)))
    for attribute in ("value", "datetime", "resource", "href"):
        if element.get(attribute):
            return str(element.get(attribute))
    return str(element.text_content())
