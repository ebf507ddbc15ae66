from __future__ import annotations

import pytest

from wipsvc.adapters.base import Cleaner
from wipsvc.adapters.builtin_cleaner import (
    PythonCleaner,
    cap_length,
    clean_values,
    normalise_price,
    strip_html,
)
from wipsvc.collection import CleaningRules

ALL_OFF = CleaningRules(
    trim_whitespace=False,
    collapse_spaces=False,
    strip_html_in_text=False,
    normalise_price=False,
    title_case_brand=False,
)


def test_trims_and_collapses_whitespace_in_single_line_fields() -> None:
    cleaned = clean_values({"title": "  Linea 50 \t  Sink\n\n undermount  "}, CleaningRules())
    assert cleaned == {"title": "Linea 50 Sink undermount"}


def test_multiline_fields_keep_their_line_breaks() -> None:
    values = {
        "features": "  Brand:   Kelso \nMaterial:\tSteel  \n\n\n\nDeep bowl ",
        "description": "First   paragraph.\r\n\r\nSecond paragraph.",
    }
    cleaned = clean_values(values, CleaningRules())
    assert cleaned["features"] == "Brand: Kelso\nMaterial: Steel\n\nDeep bowl"
    assert cleaned["description"] == "First paragraph.\n\nSecond paragraph."


def test_strips_html_from_text_fields_but_not_from_body_html() -> None:
    values = {
        "description": "<p>Hand-cast <b>fireclay</b>.</p><p>Deep&nbsp;glaze &amp; overflow.</p>",
        "title": "<span>Belfast</span> 600<script>alert(1)</script>",
        "body_html": "<p>Keep   <strong>this</strong></p>",
    }
    cleaned = clean_values(values, CleaningRules())
    # Paragraphs stay paragraphs: a blank line between them.
    assert cleaned["description"] == "Hand-cast fireclay.\n\nDeep glaze & overflow."
    assert cleaned["title"] == "Belfast 600"
    assert cleaned["body_html"] == "<p>Keep <strong>this</strong></p>"


def test_text_that_merely_looks_like_markup_is_left_alone() -> None:
    assert strip_html("5 < 6 and 7 > 3") == "5 < 6 and 7 > 3"
    assert strip_html("Tom & Jerry") == "Tom & Jerry"
    assert strip_html("line one<br/>line two") == "line one\nline two"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("249", "249.00"),
        ("249.5", "249.50"),
        ("£1,249.00", "1249.00"),
        ("1.249,50 €", "1249.50"),
        ("1 249,99", "1249.99"),
        ("EUR 12,5", "12.50"),
        ("US$ 19.999", "20.00"),
        ("GBP 0.005", "0.01"),
    ],
)
def test_normalises_prices_that_parse(raw: str, expected: str) -> None:
    assert normalise_price(raw) == expected
    assert clean_values({"price": raw}, CleaningRules())["price"] == expected


@pytest.mark.parametrize("raw", ["from 12 to 15", "call us", "12..5", "1,2,3", "-5", ""])
def test_leaves_prices_that_do_not_parse(raw: str) -> None:
    assert normalise_price(raw) is None
    assert clean_values({"price": raw}, CleaningRules())["price"] == raw


def test_only_the_price_field_is_normalised() -> None:
    assert clean_values({"mpn": "1,249"}, CleaningRules())["mpn"] == "1,249"


def test_brand_title_case_is_optional() -> None:
    values = {"brand": "HARROW & FINCH", "title": "BLANCO sink"}
    assert clean_values(values, CleaningRules())["brand"] == "HARROW & FINCH"
    cased = clean_values(values, CleaningRules(title_case_brand=True))
    assert cased == {"brand": "Harrow & Finch", "title": "BLANCO sink"}


def test_long_titles_are_cut_on_a_word_boundary() -> None:
    title = "Kelso Steelworks Linea 50 Undermount Stainless Steel Sink"
    cleaned = clean_values({"title": title}, CleaningRules(max_title_length=30))["title"]
    assert cleaned == "Kelso Steelworks Linea 50…"
    assert len(cleaned) <= 30
    assert title.startswith(cleaned.removesuffix("…"))


def test_title_cut_falls_back_to_a_hard_cut_for_one_long_word() -> None:
    assert cap_length("Supercalifragilisticexpialidocious", 12) == "Supercalifr…"


def test_titles_within_the_limit_are_untouched() -> None:
    title = "x" * 150
    assert clean_values({"title": title}, CleaningRules())["title"] == title


def test_disabled_rules_leave_values_alone() -> None:
    values = {"title": "  <b>Sink</b>  ", "price": "£249", "brand": "KELSO"}
    assert clean_values(values, ALL_OFF) == values


def test_input_is_not_modified() -> None:
    values = {"title": "  Sink  "}
    clean_values(values, CleaningRules())
    assert values == {"title": "  Sink  "}


async def test_python_cleaner_transforms_before_the_write_and_does_nothing_after() -> None:
    cleaner: Cleaner = PythonCleaner(CleaningRules(title_case_brand=True))
    cleaned = cleaner.transform({"brand": " KELSO ", "price": "249"})
    assert cleaned == {"brand": "Kelso", "price": "249.00"}
    await cleaner.run(row_num=2, sku="BB-1001")  # must not raise: there is no script to call


def test_python_cleaner_defaults_to_the_default_rules() -> None:
    assert PythonCleaner().rules == CleaningRules()
