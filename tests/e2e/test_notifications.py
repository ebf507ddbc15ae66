"""Word when a job ends, through the real HTTP API: emails received by an SMTP server
(aiosmtpd) and Standard Webhooks received by an HTTP endpoint, both on 127.0.0.1; retries
with backoff, each attempt in the delivery log, and "send again"."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.support.cli import wipsvc
from tests.support.live import LiveServer, make_settings, until, wait_for_job
from tests.support.receivers import MailSink, WebhookReceiver, standard_webhooks_valid
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.auth import create_key
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop

PUBLIC_URL = "https://wipsvc.example.com"


def _settings(database_url: str, **overrides: Any) -> Any:
    return make_settings(
        database_url,
        public_url=PUBLIC_URL,
        notify_poll_seconds=0.1,
        notify_retry_base_seconds=0.05,
        notify_retry_max_seconds=0.2,
        **overrides,
    )


async def _add_products(client: Any, shop: SampleShop, collection: str) -> list[int]:
    products = [{"sku": sku, "url": url} for sku, url in shop.products()]
    created = await client.post(f"/api/{collection}/wip", json={"products": products})
    assert created.status_code == 201, created.text
    return list(created.json()["wip_ids"])


async def _settled_log(client: Any, collection: str, **params: str) -> list[dict[str, Any]]:
    """The delivery log once no delivery is pending any more."""
    while True:
        answer = await client.get(f"/api/collections/{collection}/deliveries", params=params)
        entries: list[dict[str, Any]] = answer.json()["deliveries"]
        if entries and all(entry["status"] != "pending" for entry in entries):
            return entries
        await asyncio.sleep(0.05)


async def _process(client: Any, collection: str, ids: list[int]) -> str:
    response = await client.post(f"/api/{collection}/wip/process", json={"wip_ids": ids})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def test_a_job_end_is_mailed_and_posted_as_a_signed_webhook(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    async with MailSink() as mail, WebhookReceiver() as hooks:
        settings = _settings(sqlite_url, smtp_host="127.0.0.1", smtp_port=mail.port, smtp_tls="none")
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            ids = await _add_products(client, shop, "sinks")
            put = await client.put(
                "/api/collections/sinks/notifications",
                json={
                    "targets": [
                        {"kind": "webhook", "url": hooks.url},
                        {"kind": "email", "recipients": ["ops@example.com", "buyer@example.com"]},
                    ]
                },
            )
            assert put.status_code == 200, put.text
            webhook, mail_target = put.json()["targets"]
            secret = webhook["secret"]
            assert secret.startswith("whsec_") and len(secret) > 30
            shown = (await client.get("/api/collections/sinks/notifications")).json()["targets"]
            assert (
                shown[0]["secret"] == "whsec_********" and shown[1]["recipients"] == mail_target["recipients"]
            )

            job_id = await _process(client, "sinks", ids)
            job = await wait_for_job(client, "sinks", job_id)
            await until(lambda: len(hooks.received) == 1 and len(mail.messages) == 1)
            log = await _settled_log(client, "sinks")

    assert job["failed_products"] == len(BROKEN_SKUS) > 0
    by_target = {entry["target_id"]: entry for entry in log}
    assert len(log) == 2 and all(entry["status"] == "delivered" for entry in log)
    assert all(len(entry["attempts"]) == 1 and entry["attempts"][0]["ok"] for entry in log)

    # The webhook: Standard Webhooks headers, a signature a receiver verifies, the job's figures.
    hook = hooks.received[0]
    assert standard_webhooks_valid(secret, hook)
    assert not standard_webhooks_valid("whsec_" + "A" * 44, hook)
    assert hook.headers["webhook-id"] == by_target[webhook["id"]]["message_id"]
    body = json.loads(hook.body)
    assert body["type"] == "job.completed"
    data = body["data"]
    assert data["job_id"] == job_id and data["collection_name"] == "sinks"
    assert (data["total"], data["successful"], data["failed"]) == (
        job["total_products"],
        job["successful_products"],
        job["failed_products"],
    )
    assert {failure["sku"] for failure in data["failures"]} == set(BROKEN_SKUS)
    assert all(failure["error"] and failure["error_step"] == "extract" for failure in data["failures"])
    assert data["job_url"] == f"{PUBLIC_URL}/#/c/sinks/jobs/{job_id}"
    assert data["duration_seconds"] is not None

    # The email: to every recipient, a stable Message-ID, a text and an HTML part saying it all.
    message = mail.messages[0]
    assert sorted(mail.envelopes[0].rcpt_tos) == ["buyer@example.com", "ops@example.com"]
    assert message["Message-ID"] == f"<{by_target[mail_target['id']]['message_id']}@localhost>"
    assert f"job {job_id[:8]} finished" in message["Subject"]
    assert f"({job['successful_products']} succeeded, {job['failed_products']} failed)" in message["Subject"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    for part in (text.get_content(), html.get_content()):
        assert job_id in part and "Time taken" in part
        assert f"{PUBLIC_URL}/#/c/sinks/jobs/" in part
        for failure in data["failures"]:
            assert failure["sku"] in part
    plain = text.get_content()
    assert (
        f"Succeeded: {job['successful_products']}" in plain and f"Failed: {job['failed_products']}" in plain
    )
    assert all(failure["error"] in plain for failure in data["failures"])


async def test_a_failing_receiver_is_retried_with_backoff_and_each_attempt_is_logged(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    async with WebhookReceiver(script=[500, 503]) as flaky, WebhookReceiver(script=[500] * 10) as dead:
        settings = _settings(sqlite_url, notify_max_attempts=3)
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            ids = await _add_products(client, shop, "sinks")
            targets = [{"kind": "webhook", "url": flaky.url}, {"kind": "webhook", "url": dead.url}]
            put = await client.put("/api/collections/sinks/notifications", json={"targets": targets})
            flaky_id, dead_id = (target["id"] for target in put.json()["targets"])
            job_id = await _process(client, "sinks", ids)
            await wait_for_job(client, "sinks", job_id)

            log = await _settled_log(client, "sinks", job_id=job_id)
            entries = {entry["target_id"]: entry for entry in log}
            assert len(flaky.received) == len(dead.received) == 3
            # Three recorded attempts, one success; the dead receiver's delivery gives up.
            assert [a["ok"] for a in entries[flaky_id]["attempts"]] == [False, False, True]
            assert entries[flaky_id]["status"] == "delivered"
            assert "HTTP 500" in entries[flaky_id]["attempts"][0]["detail"]
            assert [a["ok"] for a in entries[dead_id]["attempts"]] == [False] * 3
            assert entries[dead_id]["status"] == "failed"
            # Every attempt carries the same webhook-id: the receiver keeps one.
            assert len({hook.headers["webhook-id"] for hook in flaky.received}) == 1

            # Send again: once more, same id, the log grows.
            again = await client.post(
                f"/api/collections/sinks/deliveries/{entries[flaky_id]['id']}/send-again"
            )
            assert again.status_code == 202 and again.json()["delivery"]["status"] == "pending"
            await until(lambda: len(flaky.received) == 4)
            assert flaky.received[3].headers["webhook-id"] == flaky.received[0].headers["webhook-id"]
            missing = await client.post("/api/collections/sinks/deliveries/999999/send-again")
            assert missing.status_code == 404


async def test_only_an_operator_sets_targets_and_only_to_allowed_addresses(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    async with LiveServer(_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        await _add_products(client, shop, "sinks")
        store = server.services.store
        user = (await create_key(store.keys, ["sinks"])).key
        admin = (await create_key(store.keys, None, is_admin=True)).key
        url = "/api/collections/sinks/notifications"
        hook = {"targets": [{"kind": "webhook", "url": "https://hooks.example.com/x"}]}

        refused = await client.put(url, json=hook, headers={"Authorization": f"Bearer {user}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "operator_only"
        assert (await client.get(url, headers={"Authorization": f"Bearer {user}"})).json()["targets"] == []

        as_admin = {"Authorization": f"Bearer {admin}"}
        for bad_url in ("http://hooks.example.com/x", "https://10.1.2.3/x", "ftp://127.0.0.1/x"):
            answer = await client.put(
                url, json={"targets": [{"kind": "webhook", "url": bad_url}]}, headers=as_admin
            )
            assert answer.status_code == 422, (bad_url, answer.text)
        bad_targets = [
            {"kind": "email", "recipients": ["not an address"]},
            {"kind": "email", "recipients": ["a@example.com\r\nBcc: x@example.com"]},
            {"kind": "webhook", "url": "http://127.0.0.1:9/x", "secret": "not-a-secret"},
            {"kind": "email", "recipients": []},
        ]
        for target in bad_targets:
            answer = await client.put(url, json={"targets": [target]}, headers=as_admin)
            assert answer.status_code == 422, (target, answer.text)
        other = await client.get(
            "/api/collections/elsewhere/deliveries", headers={"Authorization": f"Bearer {user}"}
        )
        assert other.status_code in (403, 404)


async def test_the_cli_lists_deliveries_and_sends_one_again(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    async with (
        WebhookReceiver() as hooks,
        LiveServer(_settings(sqlite_url), fetcher=fetcher) as server,
        server.client() as client,
    ):
        ids = await _add_products(client, shop, "sinks")
        targets = [{"kind": "webhook", "url": hooks.url, "events": ["job.completed", "product.failed"]}]
        await client.put("/api/collections/sinks/notifications", json={"targets": targets})
        job_id = await _process(client, "sinks", ids)
        await wait_for_job(client, "sinks", job_id)
        log = await _settled_log(client, "sinks")
        assert sorted(entry["event"] for entry in log) == ["job.completed"] + ["product.failed"] * len(
            BROKEN_SKUS
        )

        run = await wipsvc("deliveries", "list", "sinks", "--json", url=server.url)
        assert run.code == 0, run.err
        assert json.loads(run.out)["deliveries"] == log
        run = await wipsvc("deliveries", "list", "sinks", "--job", job_id, url=server.url)
        assert run.code == 0 and "job.completed" in run.out and "delivered" in run.out, run.out
        end = next(entry for entry in log if entry["event"] == "job.completed")
        run = await wipsvc("deliveries", "send-again", "sinks", str(end["id"]), url=server.url)
        assert run.code == 0 and f"delivery {end['id']} (job.completed) will be sent again" in run.out
        await until(lambda: len(hooks.received) == len(log) + 1)
        run = await wipsvc("deliveries", "send-again", "sinks", "424242", url=server.url)
        assert run.code != 0 and "not found" in run.err
