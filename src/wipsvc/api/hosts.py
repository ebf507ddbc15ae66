"""Which `Host` names the service answers to: the guard against DNS rebinding.

A web page on another site can make its own name resolve to 127.0.0.1 and then call a
service on the visitor's machine as if it were that site ("DNS rebinding"); the browser's
same-origin rule does not stop it. Such requests still carry the page's name in `Host`, so
while no API key exists — when arriving on loopback is the only gate — the service answers
only to loopback names, the address it is bound to and the names an operator lists in
`WIPSVC_ALLOWED_HOSTS`. Once that setting is given, it is checked with keys too.

The guard wraps the outermost ASGI app, so Socket.IO's `/socket.io` is covered like the API.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from wipsvc.api.errors import error_response
from wipsvc.config import Settings

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "[::]"})  # noqa: S104 - names to leave out, not to bind
# WebSocket close code 1008 (policy violation): uvicorn answers the handshake with 403.
_POLICY_VIOLATION = 1008


def host_name(value: str) -> str | None:
    """The name in a `Host` header (or a setting), lower-cased, without port or trailing dot;
    IPv6 addresses keep their brackets. None if it is not a well-formed host."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = (value[: end + 1], value[end + 1 :]) if end > 0 else ("", "")
    elif value.count(":") > 1:  # a bare IPv6 address, as in WIPSVC_HOST=::1
        name, rest = (f"[{value}]", "") if _is_ipv6(value) else ("", "")
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    name = name.rstrip(".")
    if not name or any(char in name for char in " /\\@?#"):
        return None
    return name


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def allowed_host_names(settings: Settings) -> frozenset[str]:
    names = set(LOOPBACK_NAMES)
    bound = host_name(settings.host)
    if bound is not None and bound not in _WILDCARD_BINDS:
        names.add(bound)
    names.update(_names(settings.allowed_hosts))
    return frozenset(names)


def _names(values: Iterable[str]) -> set[str]:
    return {name for name in map(host_name, values) if name is not None}


class HostGuard:
    """Refuses requests whose `Host` is not allowed: with 400 over HTTP, and by closing a
    WebSocket before its handshake completes (403).

    `keys_exist` is asked only for a name not on the list: when keys exist (and no list was
    configured) every request must carry a key anyway, whatever its `Host`."""

    def __init__(
        self,
        app: ASGIApp,
        allowed: frozenset[str],
        *,
        always: bool,
        keys_exist: Callable[[], Awaitable[bool]],
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.always = always
        self._keys_exist = keys_exist

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or await self._admits(scope):
            await self.app(scope, receive, send)
            return
        log.info("refused a request for a host name not allowed (%s %s)", scope["type"], scope.get("path"))
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            return
        response = error_response(
            400,
            "host_not_allowed",
            "this service does not answer to that host name: without API keys it answers only to "
            f"{', '.join(sorted(self.allowed))}; an operator may add names with WIPSVC_ALLOWED_HOSTS",
        )
        await response(scope, receive, send)

    async def _admits(self, scope: Scope) -> bool:
        name = host_name(Headers(scope=scope).get("host", ""))
        if name is not None and name in self.allowed:
            return True
        if self.always:
            return False
        try:
            return await self._keys_exist()
        except Exception:  # the database is unreachable: refuse rather than serve open
            log.exception("could not tell whether API keys exist; refusing the request")
            return False


def guard_hosts(app: ASGIApp, settings: Settings, keys_exist: Callable[[], Awaitable[bool]]) -> HostGuard:
    return HostGuard(
        app, allowed_host_names(settings), always=bool(settings.allowed_hosts), keys_exist=keys_exist
    )
