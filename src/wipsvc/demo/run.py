"""`make demo`: one job end to end, on embedded defaults, against the built-in sample shop.

Everything is real and local: the shop is an HTTP server on 127.0.0.1, the service runs
in-process on its own port, products are created and the job followed through the public
REST and Socket.IO interfaces (the same client code as `wipsvc submit --watch`).
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.text import Text

from wipsvc.app import create_app
from wipsvc.client.api import ApiClient, ApiError, ClientConfig, ClientError
from wipsvc.client.watch import watch_job
from wipsvc.config import Settings
from wipsvc.demo.shop import BROKEN_SKUS, DEMO_PAGES, SampleShop
from wipsvc.embedded import EmbeddedServer
from wipsvc.jobs.models import JobStatus, WipStatus
from wipsvc.server_options import uvicorn_options


def demo_products(shop: SampleShop, extra: int) -> list[tuple[str, str]]:
    """The shop's pages, then ``extra`` copies of its working pages under generated SKUs."""
    products = shop.products()
    # Copies of the broken page would only repeat its failure.
    working = [page for page in DEMO_PAGES if page.sku not in BROKEN_SKUS]
    for number in range(1, extra + 1):
        page = working[(number - 1) % len(working)]
        products.append((f"{page.sku}-X{number:04d}", shop.url_for(page)))
    return products


def demo_settings(product_count: int) -> Settings:
    settings = Settings()
    return settings.model_copy(
        update={
            # The shop lives on loopback, which the scraper refuses unless allowed.
            "scrape_allowed_hosts": [*settings.scrape_allowed_hosts, "127.0.0.1"],
            # The demo's job holds every product, however many were asked for.
            "max_batch": max(settings.max_batch, product_count),
        }
    )


async def run_demo(extra_products: int = 0) -> int:
    """Run the demo; 0 when the job ends as the sample shop predicts, 1 otherwise."""
    console = Console(highlight=False)
    console.print("[bold]wipsvc demo[/] · the Basin & Brass sample shop, processed end to end\n")
    async with SampleShop() as shop:
        products = demo_products(shop, extra_products)
        settings = demo_settings(len(products))
        for line in settings.database_notice():
            console.print(Text(line, "yellow" if line.startswith("warning") else "dim"))
        server = EmbeddedServer(create_app(settings), options=uvicorn_options(settings))
        await server.start()
        try:
            async with ApiClient(ClientConfig(url=server.url)) as api:
                return await _run(api, console, settings, products)
        except ClientError as error:
            console.print(Text("demo failed: ", "bold red") + Text(str(error)))
            return 1
        finally:
            await server.stop()


async def _run(api: ApiClient, console: Console, settings: Settings, products: list[tuple[str, str]]) -> int:
    collection, wip_ids = await _create(api, products)
    started = await api.start_job(collection, wip_ids)
    console.print(
        f"Collection [cyan]{collection}[/]: {len(wip_ids)} products "
        f"({len(BROKEN_SKUS)} with a discontinued page that should fail). Job {started.job_id}\n",
        soft_wrap=True,
    )
    job = await watch_job(api, collection, started.job_id, console=console)

    statuses = {product.sku: product.status for product in await api.all_products(collection)}
    broken_failed = all(statuses.get(sku) is WipStatus.ERROR for sku in BROKEN_SKUS)
    others = [sku for sku, _ in products if sku not in BROKEN_SKUS]
    ready = sum(statuses.get(sku) is WipStatus.READY for sku in others)
    checks = [
        (job.status is JobStatus.COMPLETED, f"job {job.status.value}"),
        (ready == len(others), f"{ready}/{len(others)} products ready"),
        (broken_failed, f"the discontinued page ({', '.join(sorted(BROKEN_SKUS))}) reported as failed"),
    ]
    console.print()
    for passed, label in checks:
        console.print(("[green]✓[/] " if passed else "[red]✗[/] ") + label)

    base = f"http://{settings.host}:{settings.port}"
    console.print(
        f"\nNext: [bold]make serve[/], then open {base}/api/collections/{collection}/sheet.csv"
        f"\n      or {base}/docs · database: {settings.database_description()}"
        "\n      or [bold]make serve-demo[/]: the service and the sample shop, for the README's 'Using it'",
        f"\nDone with it: [bold]wipsvc collections delete {collection} --yes[/] (with the server running)",
        soft_wrap=True,  # keep the URLs whole, to click or copy
    )
    return 0 if all(passed for passed, _ in checks) else 1


async def _create(api: ApiClient, products: list[tuple[str, str]]) -> tuple[str, list[int]]:
    """Create the products in a fresh collection; a re-run within the same second gets a suffix."""
    name = f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    for attempt in range(1, 10):
        collection = name if attempt == 1 else f"{name}-{attempt}"
        try:
            return collection, await api.create_products(collection, products)
        except ApiError as error:
            if error.code != "conflict":
                raise
    raise ApiError(409, "conflict", f"no fresh collection name near {name}")
