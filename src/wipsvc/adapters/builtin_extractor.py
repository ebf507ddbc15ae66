"""The pipeline's extraction step: the built-in extractor (:mod:`wipsvc.extraction`) on a fetched page.

Each field comes from the first layer of the extractor that has it, and ``sources`` records
which one that was ("not found" for the key fields no layer found). A page with no product
on it (no title, or a title but no product signal) fails the product with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from wipsvc.adapters.addresses import redact_url
from wipsvc.adapters.base import FetchedPage
from wipsvc.domain.errors import StepError
from wipsvc.domain.products import ExtractedProduct, FieldSource, TokenUsage
from wipsvc.extraction import ExtractionResult, extract

logger = logging.getLogger(__name__)

MAIN_TEXT_LIMIT = 20_000


def extract_structured(html: str, base_url: str, *, with_main_text: bool = True) -> ExtractedProduct:
    """The built-in extractor's fields as an ``ExtractedProduct``; never fetches anything.

    ``with_main_text`` adds the page's main text (for the LLM); it is the costliest pass, so
    the extraction step without an LLM leaves it out.
    """
    return to_product(extract(html, base_url), html if with_main_text else "")


def to_product(result: ExtractionResult, html_for_main_text: str = "") -> ExtractedProduct:
    sources = {name: cast(FieldSource, source) for name, source in result.sources.items()}
    return ExtractedProduct(
        fields=dict(result.fields), sources=sources, main_text=main_text(html_for_main_text)
    )


class StructuredDataExtractor:
    """``Extractor`` without an LLM: the built-in extractor, failing pages that show no product."""

    async def extract(
        self, page: FetchedPage, *, sku: str, usage: TokenUsage | None = None
    ) -> ExtractedProduct:
        # lxml parsing is CPU-bound: keep it off the event loop.
        result = await asyncio.to_thread(extract, page.text, page.url)
        if not result.is_product:
            shown = redact_url(page.url)
            raise StepError(
                f"no product data found on {shown}: no product on the page: {result.problem()}",
                transient=False,
            )
        product = to_product(result)
        logger.debug("sku %s: the page gave %s", sku, ", ".join(product.filled()))
        return product


def main_text(html: str) -> str:
    """The page's main text (trafilatura), capped; "" for no page or a parser failure."""
    if not html:
        return ""
    import trafilatura  # only with an LLM: importing it costs a third of a second at start-up

    try:
        text = trafilatura.extract(html, include_comments=False, include_tables=True)
    except Exception:  # the main text is a bonus for the LLM; a parser failure must not lose the product
        logger.debug("trafilatura could not extract the main text", exc_info=True)
        return ""
    return (text or "")[:MAIN_TEXT_LIMIT]
