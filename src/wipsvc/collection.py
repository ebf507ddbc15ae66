"""Per-collection configuration: which sheet, which columns, which cleaning and LLM backends."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from wipsvc.text import check_json

COLLECTION_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# What a GET shows instead of the web-app secret; a PUT that sends it back keeps the stored one.
SECRET_MASK = "**********"  # noqa: S105 (a mask, not a password)

# The row layout of a new collection: logical field -> column letter.
DEFAULT_COLUMNS: dict[str, str] = {
    "sku": "A",
    "url": "B",
    "title": "C",
    "brand": "D",
    "price": "E",
    "currency": "F",
    "gtin": "G",
    "mpn": "H",
    "availability": "I",
    "category": "J",
    "image_url": "K",
    "description": "L",
    "body_html": "M",
    "features": "N",
    "care_instructions": "O",
    "status": "P",
}

_COLUMN_LETTERS = re.compile(r"^[A-Z]{1,3}$")


# Said in the schema of each field in collection_access.OPERATOR_FIELDS.
_OPERATOR = " Operator setting: only an admin key may change it."


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SheetConfig(_Model):
    backend: Literal["local", "google"] = Field(
        "local", description="`local`: a worksheet in wipsvc's own database; `google`: a Google spreadsheet."
    )
    spreadsheet_id: str | None = Field(
        None,
        description="Google spreadsheet id (from its URL)." + _OPERATOR,
    )
    worksheet: str = Field("Sheet1", min_length=1, max_length=100, description="Worksheet (tab) title.")
    credentials_file: str | None = Field(
        None,
        description=(
            "Service-account JSON for this collection, named relative to WIPSVC_CREDENTIALS_DIR"
            " (default: WIPSVC_GOOGLE_CREDENTIALS_FILE)." + _OPERATOR
        ),
    )


class CleaningRules(_Model):
    """The embedded cleaning rules (the `python` backend)."""

    trim_whitespace: bool = Field(True, description="Strip leading and trailing whitespace of every field.")
    collapse_spaces: bool = Field(
        True, description="Collapse runs of whitespace (line breaks kept in lists)."
    )
    strip_html_in_text: bool = Field(True, description="Remove markup from every field but the HTML ones.")
    normalise_price: bool = Field(True, description="Write the price as a plain decimal number.")
    title_case_brand: bool = Field(False, description="Write the brand in title case.")
    max_title_length: int = Field(150, ge=10, le=1000, description="Longest title kept, in characters.")


def _readable_secret(schema: dict[str, Any]) -> None:
    for option in schema.get("anyOf", [schema]):
        option.pop("writeOnly", None)


class CleaningConfig(_Model):
    backend: Literal["python", "apps_script_api", "apps_script_webapp"] = Field(
        "python", description="`python`: embedded rules; `apps_script_*`: the sheet's own Apps Script."
    )
    rules: CleaningRules = Field(default_factory=CleaningRules, description="Rules of the `python` backend.")
    script_id: str | None = Field(
        None,
        description="Apps Script project id (`apps_script_api`)." + _OPERATOR,
    )
    function: str = Field(
        "cleanRow",
        description="Apps Script function called with (sheetName, rowNum, sku)." + _OPERATOR,
    )
    oauth_credentials_file: str | None = Field(
        None,
        description=(
            "Authorized-user JSON with a refresh token (`apps_script_api`), named relative to"
            " WIPSVC_CREDENTIALS_DIR." + _OPERATOR
        ),
    )
    webapp_url: str | None = Field(
        None,
        description="Deployed web-app URL (`apps_script_webapp`)." + _OPERATOR,
    )
    webapp_secret: SecretStr | None = Field(
        None,
        description=(
            "Shared secret sent to the web app; answers show it masked (`**********`), and a PUT that"
            " sends the mask keeps the stored secret." + _OPERATOR
        ),
        # Not write-only: one schema serves requests and answers, and answers carry the masked value.
        json_schema_extra=lambda schema: _readable_secret(schema),
    )

    @field_serializer("webapp_secret", when_used="json")
    def _dump_secret(self, secret: SecretStr | None, info: SerializationInfo) -> str | None:
        """Masked in API answers; in full only when the store saves it."""
        if secret is None:
            return None
        context = info.context or {}
        return secret.get_secret_value() if context.get("reveal_secrets") else SECRET_MASK


class LLMConfig(_Model):
    enabled: bool = Field(True, description="Use the LLM when one is configured (an API key is set).")
    model: str | None = Field(None, description="Model for this collection (default: WIPSVC_LLM_MODEL).")


class CollectionConfig(_Model):
    sheet: SheetConfig = Field(default_factory=SheetConfig, description="The sheet the rows go to.")
    columns: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_COLUMNS),
        description="Logical field -> column letter. `sku` and `url` are required.",
        # What _check_columns enforces, stated in the schema (all but "no two fields share a column").
        json_schema_extra={
            "required": ["sku", "url"],
            "additionalProperties": {"type": "string", "pattern": "^[A-Za-z]{1,3}$"},
        },
    )
    cleaning: CleaningConfig = Field(
        default_factory=CleaningConfig, description="How a finished row is cleaned."
    )
    llm: LLMConfig = Field(default_factory=LLMConfig, description="Whether and how the LLM is used.")
    auto_rerun: bool = Field(
        True,
        description="Re-run once, after WIPSVC_AUTO_RERUN_DELAY_SECONDS, the products of a job that "
        "failed on a transient cause (an outage); never those that failed for good (404, refused).",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        # NUL, unpaired surrogates and C0 controls: refused here rather than failing in the store.
        check_json(data)
        return data

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        for name in ("sku", "url"):
            if name not in columns:
                raise ValueError(f"columns must map '{name}'")
        letters = [letter.upper() for letter in columns.values()]
        bad = [letter for letter in letters if not _COLUMN_LETTERS.match(letter)]
        if bad:
            raise ValueError(f"not column letters: {', '.join(bad)}")
        if len(set(letters)) != len(letters):
            raise ValueError("two fields map to the same column")
        return {name: letter.upper() for name, letter in columns.items()}


def column_index(letter: str) -> int:
    """0-based index of a column letter: A -> 0, Z -> 25, AA -> 26."""
    index = 0
    for char in letter:
        index = index * 26 + (ord(char) - ord("A") + 1)
    return index - 1


def column_letter(index: int) -> str:
    """Inverse of :func:`column_index`."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def stored_form(config: CollectionConfig) -> dict[str, object]:
    """The configuration as the store keeps it (secrets included)."""
    return config.model_dump(mode="json", context={"reveal_secrets": True})
