"""The README tells the truth: its settings table is the code's, and it names every route."""

from __future__ import annotations

import re

from scripts.update_asyncapi import ASYNCAPI
from scripts.update_asyncapi import rendered as rendered_asyncapi
from scripts.update_readme import README, rendered

from wipsvc.app import create_api
from wipsvc.config import Settings


def test_settings_table_matches_the_code() -> None:
    text = README.read_text()
    assert rendered(text) == text, "run `make readme` to regenerate the settings table"


def test_every_api_route_is_in_the_readme() -> None:
    api, _ = create_api(Settings(_env_file=None))
    text = README.read_text()
    for path, operations in api.openapi()["paths"].items():
        for method in operations:
            shown = re.sub(r"\{(\w+)\}", r"{\1}", path)
            assert f"{method.upper()} {shown}" in text or (
                f"`{method.upper()}`/" in text and shown in text
            ), f"{method.upper()} {path} is not in the README"


def test_the_asyncapi_document_matches_the_event_model() -> None:
    assert ASYNCAPI.read_text() == rendered_asyncapi(), "run `make readme` to regenerate docs/asyncapi.json"
