"""How a fetched page's bytes become text: is it HTML, and in which character set."""

from __future__ import annotations

import codecs
import re

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)


def looks_like_html(body: bytes) -> bool:
    start = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in start


def charset_of(body: bytes, content_type_params: str) -> str:
    """A BOM, else the Content-Type's charset, else a <meta> one, else UTF-8 (names Python knows)."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    declared = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type_params, re.IGNORECASE)
    candidates = [declared.group(1) if declared else None]
    meta = _META_CHARSET.search(body[:4096])
    candidates.append(meta.group(1).decode("ascii") if meta else None)
    for candidate in candidates:
        if candidate:
            try:
                return codecs.lookup(candidate).name
            except LookupError:
                continue
    return "utf-8"
