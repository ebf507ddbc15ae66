"""Token counts estimated offline, as the LLM vendors' tokenizers roughly count them.

No tokenizer vocabulary is downloaded: a Latin-script word costs about one token per four
characters (at least one), a punctuation mark one, and other scripts about one token per
character (CJK) or per two characters (Cyrillic, Greek, Arabic, Hebrew, …).
"""

from __future__ import annotations

import math
import re

_PIECES = re.compile(r"[A-Za-z0-9]+|[^\W\d_]+|\d+|[^\w\s]", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def estimate_tokens(text: str) -> int:
    tokens = 0
    for piece in _PIECES.findall(text):
        if piece.isascii():
            tokens += max(1, math.ceil(len(piece) / 4))
        else:
            cjk = len(_CJK.findall(piece))
            tokens += cjk + math.ceil((len(piece) - cjk) / 2)
    return tokens


def trim_to_tokens(text: str, budget: int) -> str:
    """The longest start of ``text``, cut at a line or word break, that fits in ``budget`` tokens."""
    if estimate_tokens(text) <= budget:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits, by bisection
        middle = (low + high + 1) // 2
        if estimate_tokens(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    boundary = max(cut.rfind("\n"), cut.rfind(" "))
    return cut[:boundary] if boundary > low // 2 else cut
