"""Text that crosses the service's edge: refused in input, cleaned when it comes from outside.

PostgreSQL's `text` and `jsonb` refuse U+0000, UTF-8 cannot encode an unpaired surrogate, and
C0 control characters other than tab, LF and CR have no business in a catalogue row. Input
carrying them is refused (the caller can fix it); text from outside — scraped values, vendor
answers and errors — is cleaned before it is stored, so one odd byte never jams a job.
"""

from __future__ import annotations

import re
from typing import Any

# A Google Sheets cell holds at most 50,000 characters: nothing longer is worth storing.
MAX_TEXT_CHARS = 50_000

_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_FORBIDDEN_NAMES = {"\x00": "U+0000 (NUL)"}


def forbidden_character(text: str) -> str | None:
    """A description of the first character input may not carry, or None."""
    match = _FORBIDDEN.search(text)
    if match is None:
        return None
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        return f"an unpaired surrogate (U+{ord(char):04X})"
    return _FORBIDDEN_NAMES.get(char, f"the control character U+{ord(char):04X}")


def check_text(text: str) -> str:
    """``text`` unchanged; ValueError naming the character if it carries a forbidden one."""
    problem = forbidden_character(text)
    if problem is not None:
        raise ValueError(f"text may not contain {problem}")
    return text


def clean_text(text: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` without forbidden characters, cut to ``limit`` characters."""
    cleaned = _FORBIDDEN.sub("", text)
    return cleaned[:limit]


def one_line(text: str, limit: int = 200) -> str:
    """``text`` cleaned, its whitespace runs (newlines included) made single spaces, cut to ``limit``."""
    return " ".join(clean_text(text).split())[:limit]


def clean_json(value: Any) -> Any:
    """``value`` (JSON-shaped: dicts, lists, strings, numbers) with every string cleaned, keys too."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): clean_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    return value


def check_json(value: Any, where: str = "") -> None:
    """ValueError naming the first string (or key) of ``value`` with a forbidden character."""
    if isinstance(value, str):
        problem = forbidden_character(value)
        if problem is not None:
            raise ValueError(f"{where or 'text'} contains {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            shown = ascii(str(key))[1:-1]  # the key may be the culprit: never echo it raw
            check_json(str(key), f"a key of {where}" if where else "a key")
            check_json(item, f"{where}.{shown}" if where else shown)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json(item, f"{where}[{index}]")


# OWASP's rule for CSV injection: a spreadsheet program opening the file would run a cell
# starting with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """``value`` as a CSV cell that a spreadsheet program shows as text, never runs."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value
