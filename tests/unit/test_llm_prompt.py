"""The extraction prompt: candidates found so far, the missing fields, the page text within a token budget."""

from __future__ import annotations

from wipsvc.adapters.llm import extraction_messages
from wipsvc.adapters.token_estimate import estimate_tokens, trim_to_tokens
from wipsvc.domain.products import ExtractedProduct


def test_token_estimate_counts_words_punctuation_and_other_scripts() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("Oak chair.") == 4  # "Oak", "chai" + "r", "."
    assert estimate_tokens("internationalisation") == 5  # 20 letters, about four a token
    assert estimate_tokens("可提式多功能") == 6  # one a CJK character
    assert estimate_tokens("Холодильник") == 6  # about two Cyrillic letters a token


def test_trimming_keeps_whole_words_within_the_budget() -> None:
    text = " ".join(f"word{n}" for n in range(1_000))
    trimmed = trim_to_tokens(text, 100)
    assert estimate_tokens(trimmed) <= 100
    assert estimate_tokens(trimmed) > 80
    assert text.startswith(trimmed) and text[len(trimmed)] == " "
    assert trim_to_tokens("short text", 100) == "short text"


def test_the_prompt_gives_the_candidates_and_asks_only_for_what_is_missing() -> None:
    product = ExtractedProduct(
        fields={"title": "Oak Chair", "price": "129.00", "currency": "EUR", "images": ["https://x/1.jpg"]},
        sources={"title": "json-ld", "price": "page", "currency": "page", "brand": "not found"},
    )
    page_text = "Oak Chair by Woodworks. " * 2_000
    messages = extraction_messages(
        "https://shop.example/p", "SKU-1", product, ["brand", "gtin"], page_text, 300
    )
    prompt = str(messages[1].get("content"))
    assert "title: Oak Chair" in prompt and "price: 129.00" in prompt and "currency: EUR" in prompt
    assert "images" not in prompt  # long and of no help
    assert "Find these missing fields: brand, gtin" in prompt
    shown_text = prompt.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
    assert 250 < estimate_tokens(shown_text) <= 300
