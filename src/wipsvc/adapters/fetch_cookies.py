"""The cookies a shop sets while a fetch follows its redirects (a consent or session cookie set on
the first hop and expected on the next): kept for that one fetch only, and sent back only to the
origin that set them."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

import httpx


class FetchCookies:
    """Cookies set during one fetch, sent back only to the origin that set them."""

    def __init__(self) -> None:
        self._by_origin: dict[tuple[str, bytes, int | None], dict[str, str]] = {}

    def store(self, url: httpx.URL, response: httpx.Response) -> None:
        jar = self._by_origin.setdefault((url.scheme, url.raw_host, url.port), {})
        for header in response.headers.get_list("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            try:
                parsed.load(header)
            except CookieError:
                continue
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    jar.pop(name, None)
                else:
                    jar[name] = morsel.value

    def state_at(self, url: httpx.URL) -> tuple[httpx.URL, str | None]:
        return url.copy_with(fragment=None), self.header_for(url)

    def header_for(self, url: httpx.URL) -> str | None:
        jar = self._by_origin.get((url.scheme, url.raw_host, url.port))
        return "; ".join(f"{name}={value}" for name, value in jar.items()) if jar else None
