"""One delivery attempt: a webhook POST through the address guard, or an email over SMTP."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiosmtplib

from wipsvc import credentials
from wipsvc.adapters.guarded import request_once
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError
from wipsvc.notify import messages, signing
from wipsvc.store.outbox_repo import Delivery, Target


class DeliveryFailed(Exception):
    """The attempt failed; the message says how, fit for the delivery log."""


async def deliver(delivery: Delivery, target: Target, settings: Settings, guard: SafeFetcher) -> str:
    """Make one attempt, within WIPSVC_NOTIFY_TIMEOUT_SECONDS; return what the receiver
    answered, or raise DeliveryFailed."""
    data = delivery.payload["data"]
    link = messages.job_link(settings.public_url, data["collection_name"], data["job_id"])
    try:
        async with asyncio.timeout(settings.notify_timeout_seconds):
            if target.kind == "webhook":
                return await _post_webhook(delivery, target, link, settings, guard)
            return await _send_email(delivery, target, link, settings)
    except TimeoutError:
        raise DeliveryFailed(f"no answer within {settings.notify_timeout_seconds} s") from None


async def _post_webhook(
    delivery: Delivery, target: Target, link: str | None, settings: Settings, guard: SafeFetcher
) -> str:
    payload: dict[str, Any] = dict(delivery.payload)
    payload["data"] = {**payload["data"], "job_url": link}
    body = json.dumps(payload, separators=(",", ":")).encode()
    extra = signing.headers(target.secret or "", delivery.message_id, int(time.time()), body)
    try:
        answer = await request_once(
            guard,
            "POST",
            target.address,
            raw_json=body,
            extra_headers=extra,
            time_limit=settings.notify_timeout_seconds,
            max_bytes=64_000,
        )
    except StepError as error:
        raise DeliveryFailed(error.message) from None
    if not 200 <= answer.status_code < 300:
        # The receiver's body is not quoted: it may be anyone's server.
        raise DeliveryFailed(f"HTTP {answer.status_code} from {answer.host}")
    return f"HTTP {answer.status_code}"


async def _send_email(delivery: Delivery, target: Target, link: str | None, settings: Settings) -> str:
    if not settings.smtp_host:
        raise DeliveryFailed("no SMTP server is configured (WIPSVC_SMTP_HOST)")
    username = password = None
    if settings.smtp_credentials:
        try:
            login = json.loads(
                credentials.resolve(settings.smtp_credentials, settings.credentials_dir).read_text()
            )
            username, password = str(login["username"]), str(login["password"])
        except (credentials.CredentialError, OSError, ValueError, KeyError, TypeError) as error:
            raise DeliveryFailed(f"SMTP credentials unusable: {error}") from None
    recipients = [address.strip() for address in target.address.split(",") if address.strip()]
    message = messages.email_message(
        sender=settings.smtp_from,
        recipients=recipients,
        message_id=delivery.message_id,
        event=delivery.event,
        data=delivery.payload["data"],
        link=link,
    )
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            username=username,
            password=password,
            timeout=settings.notify_timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise DeliveryFailed(f"SMTP: {type(error).__name__}: {error}") from None
    return f"accepted by {settings.smtp_host} for {len(recipients)} recipients"
