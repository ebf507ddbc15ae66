"""Notification receivers on 127.0.0.1, in the test's event loop: a webhook endpoint that
answers from a script of status codes, and an SMTP server (aiosmtpd) that keeps every mail."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
import hashlib
import hmac
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True, slots=True)
class Hook:
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int  # what the receiver answered


def standard_webhooks_valid(secret: str, hook: Hook) -> bool:
    """Verify a Standard Webhooks signature as a receiver would, from the spec alone."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{hook.headers['webhook-id']}.{hook.headers['webhook-timestamp']}.".encode() + hook.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [part.partition(",")[2] for part in hook.headers["webhook-signature"].split()]
    return any(hmac.compare_digest(expected, sig) for sig in given)


@dataclass
class WebhookReceiver:
    """Answers each POST with the next status of ``script`` (then 200), recording it."""

    script: list[int] = field(default_factory=list)
    received: list[Hook] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/wipsvc"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")[1:]
            headers = {
                n.strip().lower(): v.strip() for n, _, v in (line.partition(":") for line in lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.script.pop(0) if self.script else 200
            self.received.append(Hook(headers, body, status))
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class MailSink:
    """An SMTP server (aiosmtpd) on 127.0.0.1 keeping every message it accepts."""

    def __init__(self, port: int = 0) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self.port = port
        self._server: asyncio.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="127.0.0.1"), "127.0.0.1", self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: Any) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class SilentListener:
    """Accepts connections on a port and never answers: a sender's attempt stays in flight."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def _hold(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: Any) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.connections:
            writer.close()
        await self._server.wait_closed()
