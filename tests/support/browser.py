"""How the browser tests and the screenshot script start Debian's Chromium, and the pages the tests
open in it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
# Without these Chromium reaches for the internet (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# How long a browser test waits for any one thing on a page.
TIMEOUT_MS = 30_000


async def open_page(browser: BrowserContext) -> tuple[Page, list[str]]:
    """A page that records the browser's JavaScript errors, so a test can assert there were none.
    HTTP error answers are not among them: the page asks for collections that may not exist yet."""
    page = await browser.new_page()
    errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", on_console)
    return page, errors
