"""Credential files a collection may use: named relative to the operator's directory.

A collection's settings name a credential file (`sheet.credentials_file`,
`cleaning.oauth_credentials_file`) relative to ``WIPSVC_CREDENTIALS_DIR``. A name never
reaches outside that directory, so whoever may edit a collection cannot make the service
read (or reveal the existence of) any other file on the server. Paths stored before names
existed still work when they lie inside the directory; any other path is refused with a
line saying where to move the file.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from wipsvc.collection import CollectionConfig

CREDENTIAL_FIELDS = (("sheet", "credentials_file"), ("cleaning", "oauth_credentials_file"))


class CredentialError(ValueError):
    """A credential name that may not be used; the message is one line, fit for the caller."""


def _directory(credentials_dir: str | None) -> Path:
    if not credentials_dir:
        raise CredentialError(
            "no credentials directory is configured (WIPSVC_CREDENTIALS_DIR): "
            "collections cannot name credential files"
        )
    return Path(credentials_dir).resolve()


def check_name(name: str, credentials_dir: str | None) -> Path:
    """The file a credential ``name`` stands for; CredentialError if it escapes the directory
    or does not exist."""
    directory = _directory(credentials_dir)
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not name or name.startswith(("/", "\\", "~")) or ".." in parts or ":" in name:
        raise CredentialError(
            f"credential name {name!r} must be a file name relative to the credentials directory"
        )
    path = (directory / name).resolve()
    if not path.is_relative_to(directory):
        raise CredentialError(f"credential name {name!r} leads outside the credentials directory")
    if not path.is_file():
        raise CredentialError(f"credential file {name!r} does not exist in the credentials directory")
    return path


def resolve(stored: str, credentials_dir: str | None) -> Path:
    """The file a stored credential setting stands for, at use time.

    A name is resolved in the directory; an absolute path (stored before names existed) is
    accepted only if it lies inside the directory."""
    if Path(stored).is_absolute():
        directory = Path(credentials_dir).resolve() if credentials_dir else None
        path = Path(stored).resolve()
        if directory is None or not path.is_relative_to(directory):
            where = credentials_dir or "the directory WIPSVC_CREDENTIALS_DIR names"
            raise CredentialError(
                f"credential file {stored} is named by path: move it into {where} "
                "and name it relative to that directory"
            )
        return check_name(str(path.relative_to(directory)), credentials_dir)
    return check_name(stored, credentials_dir)


def with_resolved_credentials(
    config: CollectionConfig,
    credentials_dir: str | None,
    sections: tuple[str, ...] = ("sheet", "cleaning"),
) -> CollectionConfig:
    """``config`` with the credential names its backends (of ``sections``) use replaced by the
    files' paths, for the adapters to load; CredentialError (one line) if a name cannot be used."""
    in_use = {
        "sheet": config.sheet.backend == "google" and "sheet" in sections,
        "cleaning": config.cleaning.backend == "apps_script_api" and "cleaning" in sections,
    }
    updates: dict[str, object] = {}
    for section, field in CREDENTIAL_FIELDS:
        part = getattr(config, section)
        stored = getattr(part, field)
        if stored and in_use[section]:
            resolved = str(resolve(stored, credentials_dir))
            updates[section] = part.model_copy(update={field: resolved})
    return config.model_copy(update=updates) if updates else config


def name_for(path: str, credentials_dir: str) -> str | None:
    """The name a stored absolute path inside ``credentials_dir`` gets; None for other values."""
    if not Path(path).is_absolute():
        return None
    directory = Path(credentials_dir).resolve()
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(directory):
        return None
    return resolved.relative_to(directory).as_posix()
