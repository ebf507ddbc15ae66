"""Each due time of a recurring schedule fires exactly once, however many instances look at it
at the same moment: three schedulers, each with its own connection pool, on one PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.support.live import ManualClock, make_settings
from wipsvc.jobs.scheduler import Scheduler
from wipsvc.store import Store
from wipsvc.store.tables import schedule_fires, wip_jobs

START = datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC)
ROUNDS = 6


@pytest.mark.postgres
async def test_three_instances_fire_each_due_time_once(postgres_url: str) -> None:
    settings = make_settings(postgres_url, max_batch=2, schedule_min_interval_seconds=1)
    stores = [await Store.open(postgres_url) for _ in range(3)]
    clock = ManualClock(START)
    schedulers = [Scheduler(store, settings, clock=clock) for store in stores]
    try:
        first = stores[0]
        await first.collections.ensure("sinks")
        schedule = await first.schedules.create(
            "sinks", "* * * * * */10", "UTC", ["pending"], next_fire_at=START + timedelta(seconds=10)
        )
        made_by: Counter[int] = Counter()
        for round_ in range(ROUNDS):
            # Three new products each round: two jobs (2 + 1) per fire when it fires once.
            await first.collections.create_products(
                "sinks", [(f"R{round_}-{n}", f"https://shop.example/{round_}/{n}") for n in range(3)]
            )
            now = clock.advance(seconds=10)
            results = await asyncio.gather(*(scheduler.run_due(now) for scheduler in schedulers))
            for index, made in enumerate(results):
                made_by[index] += len(made)
            assert sum(len(made) for made in results) == 1, results

        async with first.db.read() as conn:
            fires = (
                await conn.execute(
                    sa.select(schedule_fires.c.due_at, schedule_fires.c.outcome, schedule_fires.c.job_ids)
                    .where(schedule_fires.c.schedule_id == schedule.id)
                    .order_by(schedule_fires.c.due_at)
                )
            ).all()
            jobs = (
                (
                    await conn.execute(
                        sa.select(wip_jobs.c.wip_ids).where(wip_jobs.c.schedule_id == schedule.id)
                    )
                )
                .scalars()
                .all()
            )
        assert [fire.due_at for fire in fires] == [
            START + timedelta(seconds=10 * n) for n in range(1, ROUNDS + 1)
        ]
        assert {fire.outcome for fire in fires} == {"fired"}
        assert all(len(fire.job_ids) == 2 for fire in fires)
        assert len(jobs) == 2 * ROUNDS  # no product went into two jobs, no fire made jobs twice
        assert sum(made_by.values()) == ROUNDS
    finally:
        for store in stores:
            await store.close()
