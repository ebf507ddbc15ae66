"""Text values from markup and JSON: one line, entities decoded, placeholders dropped."""

from __future__ import annotations

import html as html_entities
import re
from typing import Any

# Unfilled template variables shops publish by mistake: "$metabrand", "{{ brand }}", "[brand]", "%BRAND%".
_PLACEHOLDER = re.compile(r"^(\$[a-z_][\w.]*|\{\{.*\}\}|\[\w+\]|%\w+%|\$\{.*\})$", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,500}>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_EMPTY_WORDS = frozenset(
    {"null", "none", "undefined", "n/a", "na", "-", "false", "nan", "[object object]", "does not apply",
     "not applicable", "nicht zutreffend", "non applicabile", "no aplica", "sans objet", "não se aplica"}
)  # fmt: skip


def clean_text(value: Any, *, single_line: bool = True) -> str:
    """A display string from a text, number, value object, named object or list; "" if none."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        # Outside text: markup some shops leave in their data, and control characters, go.
        text = _CONTROL.sub("", _TAG.sub(" ", html_entities.unescape(value))).strip()
        if single_line:
            text = " ".join(text.split())
        else:
            text = re.sub(r"[ \t]*\n[ \t]*", "\n", re.sub(r"[ \t]{2,}", " ", text))
        if text.lower() in _EMPTY_WORDS or _PLACEHOLDER.match(text):
            return ""
        return text
    if isinstance(value, dict):
        for key in ("@value", "name", "value", "@id"):
            if key in value and (text := clean_text(value[key], single_line=single_line)):
                return text if key != "@id" or not text.startswith(("http", "_:", "#")) else ""
        return ""
    if isinstance(value, list):
        return next((text for item in value if (text := clean_text(item, single_line=single_line))), "")
    return ""


def words(text: str) -> set[str]:
    return {word for word in re.findall(r"\w+", text.lower()) if len(word) > 1 or not word.isascii()}


def resembles(name: str, title: str) -> bool:
    """Whether a product name found in data is the page's title (most of its words are)."""
    name_words, title_words = words(name), words(title)
    if not name_words or not title_words:
        return False
    return len(name_words & title_words) >= 0.6 * min(len(name_words), len(title_words))
