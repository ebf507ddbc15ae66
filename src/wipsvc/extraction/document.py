"""The page parsed once, and what every layer needs to know about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lxml.html

from wipsvc.extraction.text import clean_text, resembles

HtmlTree = Any  # lxml.html.HtmlElement; lxml ships without type hints
_NAVIGATION = frozenset({"nav", "header", "footer", "aside"})


def parse_document(html: str) -> HtmlTree | None:
    # Bytes, because lxml refuses str input that starts with an XML encoding declaration (XHTML).
    try:
        parser = lxml.html.HTMLParser(encoding="UTF-8")
        return lxml.html.fromstring(html.encode("utf-8", "replace"), parser=parser)
    except Exception:  # lxml's ParserError, e.g. "Document is empty"
        return None


@dataclass(slots=True)
class Page:
    """A parsed page: its tree, URL, language tag and the meta tags found anywhere in it."""

    tree: HtmlTree
    url: str
    language: str = ""
    meta: dict[str, str] = field(default_factory=dict)  # first content per lower-cased property/name
    heading: str = ""  # the product's <h1> (see _main_heading)
    heading_element: HtmlTree | None = None

    @classmethod
    def parse(cls, html: str, url: str) -> Page | None:
        tree = parse_document(html)
        if tree is None:
            return None
        page = cls(tree=tree, url=url)
        page.language = clean_text(tree.get("lang") or tree.get("xml:lang") or "")
        # The HTML parser moves meta tags it meets in <body> out of <head>: read them wherever they are.
        for element in tree.iter("meta"):
            key = (element.get("property") or element.get("name") or "").strip().lower()
            content = element.get("content")
            if key and content is not None and key not in page.meta:
                page.meta[key] = content
        if not page.language:
            page.language = clean_text(page.meta.get("og:locale", "")).replace("_", "-")
        page.heading_element = page._main_heading()
        if page.heading_element is not None:
            page.heading = clean_text(page.heading_element.text_content())
        return page

    def _main_heading(self) -> HtmlTree | None:
        """The <h1> naming the product: one that resembles the og:title or <title> when the page
        has several (a sidebar's or a logo's <h1> comes first on some), else the first outside
        navigation, else the first."""
        headings = [h1 for h1 in self.tree.iter("h1") if clean_text(h1.text_content())]
        if len(headings) <= 1:
            return headings[0] if headings else None
        titles = [clean_text(self.meta.get("og:title")), self.html_title]
        for h1 in headings:
            if any(title and resembles(clean_text(h1.text_content()), title) for title in titles):
                return h1
        outside = [h1 for h1 in headings if not any(a.tag in _NAVIGATION for a in h1.iterancestors())]
        return (outside or headings)[0]

    @property
    def title(self) -> str:
        """The product's name as the page shows it: its <h1>, else og:title, else <title>."""
        return self.heading or clean_text(self.meta.get("og:title")) or self.html_title

    @property
    def html_title(self) -> str:
        element = self.tree.find(".//title")
        return clean_text(element.text_content()) if element is not None else ""
