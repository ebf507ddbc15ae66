"""What a notification says: the email's text and HTML parts, and the job page's link."""

from __future__ import annotations

import html
from email.message import EmailMessage
from typing import Any

from wipsvc.store.outbox_repo import PRODUCT_FAILED

_HEADLINES = {
    "job.completed": "finished",
    "job.failed": "failed",
    "job.cancelled": "was cancelled",
    PRODUCT_FAILED: "had a product fail",
}


def job_link(public_url: str | None, collection: str, job_id: str) -> str | None:
    """The dashboard's page of the job (collection names and job ids need no escaping)."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/#/c/{collection}/jobs/{job_id}"


def subject(event: str, data: dict[str, Any]) -> str:
    line = f"[wipsvc] {data['collection_name']}: job {data['job_id'][:8]} {_HEADLINES.get(event, event)}"
    if event == "job.completed":
        line += f" ({data['successful']} succeeded, {data['failed']} failed)"
    return line


def text_body(event: str, data: dict[str, Any], link: str | None) -> str:
    lines = [subject(event, data).removeprefix("[wipsvc] "), ""]
    if event == PRODUCT_FAILED:
        lines.append(
            f"{data['sku']} (wip {data['wip_id']}) failed at {data.get('error_step')}: {data['error']}"
        )
    else:
        lines += [
            f"Job: {data['job_id']}",
            f"Collection: {data['collection_name']}",
            f"Status: {data['status']}",
            f"Processed: {data['processed']} of {data['total']}",
            f"Succeeded: {data['successful']}",
            f"Failed: {data['failed']}",
            f"Time taken: {_duration(data.get('duration_seconds'))}",
        ]
        if data.get("error"):
            lines.append(f"Error: {data['error']}")
        if data["failures"]:
            lines += ["", "Failed products:"]
            lines += [
                f"- {f['sku']} (wip {f['wip_id']}, {f['error_step']}): {f['error']}" for f in data["failures"]
            ]
    if link:
        lines += ["", f"Job page: {link}"]
    return "\n".join(lines) + "\n"


def html_body(event: str, data: dict[str, Any], link: str | None) -> str:
    esc = html.escape
    parts = [f"<h2>{esc(subject(event, data).removeprefix('[wipsvc] '))}</h2>"]
    if event == PRODUCT_FAILED:
        parts.append(
            f"<p><b>{esc(data['sku'])}</b> (wip {data['wip_id']}) failed at "
            f"{esc(str(data.get('error_step')))}: {esc(data['error'])}</p>"
        )
    else:
        rows = [
            ("Job", data["job_id"]),
            ("Collection", data["collection_name"]),
            ("Status", data["status"]),
            ("Processed", f"{data['processed']} of {data['total']}"),
            ("Succeeded", data["successful"]),
            ("Failed", data["failed"]),
            ("Time taken", _duration(data.get("duration_seconds"))),
        ]
        if data.get("error"):
            rows.append(("Error", data["error"]))
        parts.append(
            "<table>" + "".join(f"<tr><th>{k}</th><td>{esc(str(v))}</td></tr>" for k, v in rows) + "</table>"
        )
        if data["failures"]:
            items = "".join(
                f"<li><b>{esc(f['sku'])}</b> (wip {f['wip_id']}, {esc(str(f['error_step']))}): "
                f"{esc(f['error'])}</li>"
                for f in data["failures"]
            )
            parts.append(f"<h3>Failed products</h3><ul>{items}</ul>")
    if link:
        parts.append(f'<p><a href="{esc(link)}">Open the job page</a></p>')
    return "<html><body>" + "".join(parts) + "</body></html>"


def email_message(
    *, sender: str, recipients: list[str], message_id: str, event: str, data: dict[str, Any], link: str | None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject(event, data)
    # Stable across attempts, so that a mail client shows a repeated delivery once.
    domain = sender.rpartition("@")[2] or "wipsvc"
    message["Message-ID"] = f"<{message_id}@{domain}>"
    message.set_content(text_body(event, data, link))
    message.add_alternative(html_body(event, data, link), subtype="html")
    return message


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not started"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"
