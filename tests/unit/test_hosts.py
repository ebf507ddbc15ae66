"""Reading `Host` headers and the names the service answers to."""

from __future__ import annotations

import pytest

from wipsvc.api.hosts import allowed_host_names, host_name
from wipsvc.config import Settings


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8000", "localhost"),
        ("localhost.", "localhost"),
        ("127.0.0.1:1", "127.0.0.1"),
        ("[::1]", "[::1]"),
        ("[::1]:8000", "[::1]"),
        ("::1", "[::1]"),
        ("wipsvc.example.com:443", "wipsvc.example.com"),
        ("", None),
        (":80", None),
        ("localhost:", None),
        ("localhost:abc", None),
        ("localhost:80:80", None),
        ("[::1", None),
        ("[::1]x", None),
        ("evil.example/localhost", None),
        ("user@localhost", None),
        ("local host", None),
    ],
)
def test_host_name(header: str, name: str | None) -> None:
    assert host_name(header) == name


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_allowed_names_are_loopback_the_bound_address_and_the_setting() -> None:
    assert allowed_host_names(_settings()) == {"localhost", "127.0.0.1", "[::1]"}
    assert "127.0.0.2" in allowed_host_names(_settings(host="127.0.0.2"))
    assert "[::1]" in allowed_host_names(_settings(host="::1"))
    # A wildcard bind is not a name clients use.
    assert allowed_host_names(_settings(host="0.0.0.0")) == {"localhost", "127.0.0.1", "[::1]"}
    configured = allowed_host_names(_settings(allowed_hosts="Wipsvc.Example.com:443, other.example ,"))
    assert {"wipsvc.example.com", "other.example"} <= configured
