"""A crash between a job's end and its notifications: `wipsvc serve` is killed with SIGKILL
while both the email and the webhook are in flight (their receivers accepted the connection
and never answered), so neither was delivered nor recorded. After a restart exactly one email
and one webhook arrive: the outbox row was written with the job's end, and the dead sender's
claim runs out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.live import until, wait_for_job
from tests.support.receivers import MailSink, SilentListener, WebhookReceiver, standard_webhooks_valid
from tests.support.server_process import ServerProcess, free_port, server_env
from wipsvc.demo.shop import SampleShop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def test_a_crash_between_the_end_and_the_send_gives_exactly_one_email_and_one_webhook(
    tmp_path: Path, shop: SampleShop
) -> None:
    hook_port, smtp_port = free_port(), free_port()
    env = server_env(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'wipsvc.db'}",
        scrape_allowed_hosts="127.0.0.1",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_tls="none",
        notify_timeout_seconds=2,
        notify_poll_seconds=0.2,
        claim_interval_seconds=0.2,
    )
    server = ServerProcess(env, port=free_port(), cwd=tmp_path, log_path=tmp_path / "server.log")
    try:
        async with SilentListener(hook_port) as silent_hook, SilentListener(smtp_port) as silent_smtp:
            server.start()
            await asyncio.to_thread(server.wait_ready)
            async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as client:
                products = [{"sku": sku, "url": url} for sku, url in shop.products()]
                ids = (await client.post("/api/sinks/wip", json={"products": products})).json()["wip_ids"]
                targets = [
                    {"kind": "webhook", "url": f"http://127.0.0.1:{hook_port}/hooks"},
                    {"kind": "email", "recipients": ["ops@example.com"]},
                ]
                put = await client.put("/api/collections/sinks/notifications", json={"targets": targets})
                assert put.status_code == 200, put.text
                secret = put.json()["targets"][0]["secret"]
                started = await client.post("/api/sinks/wip/process", json={"wip_ids": ids})
                job = await wait_for_job(client, "sinks", started.json()["job_id"])
                await until(lambda: silent_hook.connections != [] and silent_smtp.connections != [], 30)
            await asyncio.to_thread(server.kill)

        async with WebhookReceiver(port=hook_port) as hooks, MailSink(port=smtp_port) as mail:
            server.start()
            await asyncio.to_thread(server.wait_ready)
            async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as client:
                while True:
                    log = (await client.get("/api/collections/sinks/deliveries")).json()["deliveries"]
                    if all(entry["status"] == "delivered" for entry in log):
                        break
                    await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(server.stop)

    assert len(log) == 2 and all(len(entry["attempts"]) == 1 for entry in log)
    assert len(hooks.received) == 1 and len(mail.messages) == 1
    assert standard_webhooks_valid(secret, hooks.received[0])
    assert job["job_id"] in hooks.received[0].body.decode()
    email_entry = next(entry for entry in log if entry["target_id"] == 2)  # the second target
    assert mail.messages[0]["Message-ID"] == f"<{email_entry['message_id']}@localhost>"
    assert job["job_id"][:8] in mail.messages[0]["Subject"]
