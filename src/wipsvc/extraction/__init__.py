"""Product data from a product page's HTML, without an LLM (see :mod:`wipsvc.extraction.core`)."""

from wipsvc.extraction.core import KEY_FIELDS, NOT_FOUND, ExtractionResult, extract

__all__ = ["KEY_FIELDS", "NOT_FOUND", "ExtractionResult", "extract"]
