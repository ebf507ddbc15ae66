"""Which addresses and URLs may be fetched, and how they may be shown.

The address policy behind :class:`~wipsvc.adapters.scraper.SafeFetcher`: which URLs are
fetched at all, which IP addresses count as public, how a host name is resolved, and how
URLs and addresses appear in logs and messages without leaking credentials or hiding the
address an IPv6 form maps to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from wipsvc.domain.errors import StepError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Python's is_global has changed between releases; these lists make the policy explicit.
_NON_PUBLIC_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/96", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7",
        "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
_CLOUD_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SECRET_QUERY_KEY = re.compile(r"token|key|secret|pass|pwd|auth|sig|session|credential", re.IGNORECASE)


async def resolve_with_system_dns(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def redact_url(url: str) -> str:
    """The URL as it may appear in logs and messages: no userinfo, no credential-like query values."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = urlencode(
            [(k, "REDACTED" if _SECRET_QUERY_KEY.search(k) else v) for k, v in parse_qsl(parts.query, True)]
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<invalid URL>"


def parse_url(url: str) -> httpx.URL:
    """``url`` parsed, if it is a URL that may be fetched at all; StepError if refused."""
    shown = redact_url(url)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise StepError(f"refused {shown}: not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise StepError(f"refused {shown}: only http and https URLs are fetched")
    if parsed.userinfo:
        raise StepError(f"refused {shown}: URLs with a user name or password are not fetched")
    if not parsed.raw_host:
        raise StepError(f"refused {shown}: the URL has no host")
    return parsed


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched from (e.g. "a private address"), or None if it is public."""
    if address in _CLOUD_METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        for embedded in _embedded_ipv4(address):
            inner = address_problem(embedded)
            if inner is not None:
                return f"an IPv6 address embedding {embedded} ({inner})"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global or any(address in network for network in _NON_PUBLIC_NETWORKS):
        return "a private address"
    return None


def show_address(address: IPAddress) -> str:
    # Python before 3.13 prints ::ffff:10.0.0.1 as ::ffff:a00:1, hiding the address it maps to.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    # 6to4, Teredo and NAT64 addresses route to the IPv4 address they carry.
    embedded: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if address in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded
