"""Notification pieces: Standard Webhooks signatures, what an email says, retry backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wipsvc.config import Settings
from wipsvc.notify import messages, signing
from wipsvc.notify.sender import NotificationSender


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    signature = signing.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_secrets_are_whsec_base64_of_enough_bytes() -> None:
    assert len(signing.secret_bytes(signing.new_secret())) == 32
    for bad in ("plain", "whsec_not base64!", "whsec_AAAA"):
        with pytest.raises(ValueError, match="webhook secret"):
            signing.secret_bytes(bad)


def _data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "job_id": "0f1e2d3c-aaaa-bbbb-cccc-000000000000",
        "collection_name": "sinks",
        "status": "completed",
        "total": 3,
        "processed": 3,
        "successful": 2,
        "failed": 1,
        "failures": [
            {"wip_id": 7, "sku": "<b>SKU</b>", "error": "HTTP 404 fetching x & y", "error_step": "extract"}
        ],
        "error": None,
        "duration_seconds": 125.0,
    }
    return data | overrides


def test_the_email_says_what_happened_in_text_and_escaped_html() -> None:
    link = messages.job_link("https://svc.example/", "sinks", _data()["job_id"])
    assert link == "https://svc.example/#/c/sinks/jobs/0f1e2d3c-aaaa-bbbb-cccc-000000000000"
    message = messages.email_message(
        sender="wipsvc@svc.example",
        recipients=["ops@example.com"],
        message_id="msg_x.end.1",
        event="job.completed",
        data=_data(),
        link=link,
    )
    assert message["Message-ID"] == "<msg_x.end.1@svc.example>"
    assert message["Subject"] == "[wipsvc] sinks: job 0f1e2d3c finished (2 succeeded, 1 failed)"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    assert "Succeeded: 2" in plain and "Failed: 1" in plain and "Time taken: 2 min 5 s" in plain
    assert "- <b>SKU</b> (wip 7, extract): HTTP 404 fetching x & y" in plain
    rich = html.get_content()
    assert "&lt;b&gt;SKU&lt;/b&gt;" in rich and "<b>SKU</b>" not in rich and "x &amp; y" in rich
    assert 'href="https://svc.example/#/c/sinks/jobs/0f1e2d3c-' in rich


def test_a_job_that_never_started_says_so() -> None:
    body = messages.text_body(
        "job.cancelled", _data(status="cancelled", duration_seconds=None, failures=[]), None
    )
    assert "was cancelled" in body and "Time taken: not started" in body and "Job page" not in body


def test_retries_back_off_exponentially_up_to_a_cap_and_then_stop() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    settings = Settings(
        _env_file=None,
        notify_max_attempts=5,
        notify_retry_base_seconds=2,
        notify_retry_max_seconds=5,
    )
    sender = NotificationSender(None, settings, None, clock=lambda: now)  # type: ignore[arg-type]
    waits = [sender.retry_at(made) for made in range(1, 6)]
    assert waits[:4] == [now + timedelta(seconds=s) for s in (2, 4, 5, 5)]
    assert waits[4] is None
