"""Who may change which collection settings, and what a new setting may point at.

A collection's *operator fields* decide what the service connects to or reads on its behalf:
the spreadsheet, the credential files, the Apps Script project and function, the web app and
its secret. Only an admin (an admin key, or the local caller of an open service) may change
them. Everyone who may use a collection may change the rest (columns, cleaning rules, LLM
model, worksheet title); their PUT keeps the stored operator fields when it omits them or
sends them unchanged — the masked secret of a GET included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from wipsvc.collection import SECRET_MASK, CollectionConfig
from wipsvc.credentials import CREDENTIAL_FIELDS, CredentialError, check_name
from wipsvc.domain.errors import StepError

OPERATOR_FIELDS: tuple[tuple[str, str], ...] = (
    ("sheet", "spreadsheet_id"),
    ("sheet", "credentials_file"),
    ("cleaning", "script_id"),
    ("cleaning", "function"),
    ("cleaning", "oauth_credentials_file"),
    ("cleaning", "webapp_url"),
    ("cleaning", "webapp_secret"),
)

# Resolves a URL's host and raises if the address policy refuses it (SafeFetcher.vet).
VetUrl = Callable[[str], Awaitable[object]]


class OperatorOnly(Exception):
    """A caller without admin rights tried to change operator fields."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(
            f"only an admin key (or the local caller of an open service) may change {', '.join(fields)}"
        )
        self.fields = fields


class UnusableSetting(ValueError):
    """A setting that names a file or address the service may not use; ``field`` says which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def merge_settings(
    requested: CollectionConfig, stored: CollectionConfig | None, *, is_admin: bool
) -> CollectionConfig:
    """The configuration to store for ``requested``: the masked secret stands for the stored one;
    without admin rights, operator fields keep their stored values (OperatorOnly if the request
    tried to change them)."""
    base = stored or CollectionConfig()
    sections: dict[str, dict[str, Any]] = {"sheet": {}, "cleaning": {}}
    changed: list[str] = []
    for section, field in OPERATOR_FIELDS:
        part = getattr(requested, section)
        sent = section in requested.model_fields_set and field in part.model_fields_set
        old, new = getattr(getattr(base, section), field), getattr(part, field)
        if field == "webapp_secret" and _plain(new) == SECRET_MASK:
            if old is None:
                raise UnusableSetting(
                    f"{section}.{field}", "no secret is stored: send the secret itself, not the mask"
                )
            new = old
        if is_admin:
            sections[section][field] = new
            continue
        if sent and _plain(new) != _plain(old):
            changed.append(f"{section}.{field}")
        sections[section][field] = old
    if changed:
        raise OperatorOnly(changed)
    return requested.model_copy(
        update={name: getattr(requested, name).model_copy(update=values) for name, values in sections.items()}
    )


async def check_reach(
    config: CollectionConfig,
    stored: CollectionConfig | None,
    *,
    credentials_dir: str | None,
    vet_url: VetUrl,
) -> None:
    """UnusableSetting if a credential name or URL that ``config`` sets anew may not be used.

    Values kept from ``stored`` are not checked again here: jobs and check-config report those."""
    base = stored or CollectionConfig()
    for section, field in CREDENTIAL_FIELDS:
        name = getattr(getattr(config, section), field)
        if name and name != getattr(getattr(base, section), field):
            try:
                check_name(name, credentials_dir)
            except CredentialError as error:
                raise UnusableSetting(f"{section}.{field}", str(error)) from None
    url = config.cleaning.webapp_url
    if url and url != base.cleaning.webapp_url:
        try:
            await vet_url(url)
        except StepError as error:
            raise UnusableSetting("cleaning.webapp_url", error.message) from None
