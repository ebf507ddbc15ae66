"""The Redis-kept quota bucket: several instances (here: several Redis clients, each with its own
bucket object on one key) never take more than the account's quota together, a 429 seen by one
pauses all, and a project's quota above two users' holds. Time is a controllable clock passed to
Redis's script; nothing here depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from tests.support.clocks import ManualClock
from tests.support.sleeps import HeldSleep
from wipsvc.domain.priority import Priority
from wipsvc.limits.bucket import Permit
from wipsvc.limits.shared import SharedQuotaBucket
from wipsvc.limits.waiting import call_priority

pytestmark = pytest.mark.redis


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[object]]:
    from redis.asyncio import Redis

    made = [Redis.from_url(redis_url) for _ in range(3)]
    yield list(made)
    for client in made:
        await client.aclose()


def key() -> str:
    return f"wipsvc-test:{uuid.uuid4().hex}"


async def settle(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (each round trip to Redis takes a few turns)."""
    for _ in range(2_000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the buckets did not settle")


async def test_instances_together_never_take_more_than_the_limit(clients: list[object]) -> None:
    clock, sleeper, name = ManualClock(1_000.0), HeldSleep(), key()
    buckets = [
        SharedQuotaBucket(c, name, "sheets_write", 10, 60.0, clock=clock, sleep=sleeper) for c in clients
    ]
    admitted: list[tuple[int, float]] = []

    async def call(index: int) -> None:
        permit = await buckets[index % 3].acquire()
        admitted.append((index, clock.now))
        permit.release()

    tasks = [asyncio.create_task(call(i)) for i in range(30)]
    # Each instance's head waiter asks Redis and sleeps; the others queue behind it, FIFO.
    await settle(lambda: len(admitted) == 10 and len(sleeper.delays) == 3)
    assert len(admitted) == 10
    assert all(wait == pytest.approx(60.0) for wait in sleeper.delays)
    clock.now += 60.0
    sleeper.release_all()
    await settle(lambda: len(admitted) == 20 and len(sleeper.delays) == 6)
    assert len(admitted) == 20
    clock.now += 60.0
    sleeper.release_all()
    await asyncio.gather(*tasks)
    per_window = [sum(1 for _, at in admitted if at == start) for start in (1_000.0, 1_060.0, 1_120.0)]
    assert per_window == [10, 10, 10]
    # FIFO within each instance: its callers were admitted in the order they asked.
    for instance in range(3):
        order = [index for index, _ in admitted if index % 3 == instance]
        assert order == sorted(order)
    for bucket in buckets:
        await bucket.flush()


async def _next_take_waits(
    bucket: SharedQuotaBucket, seconds: float, clock: ManualClock, sleeper: HeldSleep
) -> None:
    """The bucket's next caller sleeps ``seconds`` (no more, no less), then is admitted."""
    waiting = asyncio.create_task(bucket.acquire())
    await settle(lambda: len(sleeper.delays) == 1)
    assert sleeper.delays == [pytest.approx(seconds)]
    clock.now += seconds
    sleeper.release_all()
    (await waiting).release()
    await bucket.flush()


async def test_a_429_seen_by_one_instance_pauses_the_account_for_all(clients: list[object]) -> None:
    clock, sleeper, name = ManualClock(1_000.0), HeldSleep(), key()
    first, second = (
        SharedQuotaBucket(c, name, "sheets_write", 60, 60.0, clock=clock, sleep=sleeper, backoff=4.0)
        for c in clients[:2]
    )
    permit = await first.acquire()
    assert permit.throttled(retry_after=7.5) == 7.5
    permit.release()
    await first.flush()
    await _next_take_waits(second, 7.5, clock, sleeper)


async def test_the_concurrency_cap_holds_across_instances(clients: list[object]) -> None:
    clock, name = ManualClock(1_000.0), key()
    buckets = [
        SharedQuotaBucket(c, name, "apps_script", None, 60.0, max_concurrent=2, clock=clock, poll=0.01)
        for c in clients
    ]
    running = [await buckets[0].acquire(), await buckets[1].acquire()]
    third = asyncio.create_task(buckets[2].acquire())
    for _ in range(20):  # it keeps asking, and is refused while both calls run
        await asyncio.sleep(0.01)
        assert not third.done()
    running[0].release()
    await buckets[0].flush()
    (await third).release()
    running[1].release()
    for bucket in buckets:
        await bucket.flush()


async def test_a_project_quota_above_two_users_holds(clients: list[object]) -> None:
    clock, sleeper, project_key = ManualClock(1_000.0), HeldSleep(), key()

    def user(client: object) -> SharedQuotaBucket:
        project = SharedQuotaBucket(client, project_key, "project_write", 6, 60.0, clock=clock, sleep=sleeper)
        return SharedQuotaBucket(
            client, key(), "sheets_write", 5, 60.0, clock=clock, sleep=sleeper, enclosing=project
        )

    alice, bob = user(clients[0]), user(clients[1])
    permits: list[Permit] = []

    async def take(bucket: SharedQuotaBucket) -> None:
        permits.append(await bucket.acquire())

    tasks = [asyncio.create_task(take(b)) for b in (alice, bob) for _ in range(5)]
    await settle(lambda: len(permits) == 6 and len(sleeper.delays) == 2)
    assert len(permits) == 6  # each user may take 5, the project only 6 of the 10
    clock.now += 60.0
    sleeper.release_all()
    await asyncio.gather(*tasks)
    for permit in permits:
        permit.release()
    for bucket in (alice, bob):
        await bucket.flush()


async def test_finish_anchored_tokens_count_from_the_calls_end(clients: list[object]) -> None:
    clock, sleeper, name = ManualClock(1_000.0), HeldSleep(), key()
    bucket = SharedQuotaBucket(
        clients[0], name, "sheets_write", 1, 60.0, anchor="finish", clock=clock, sleep=sleeper
    )
    permit = await bucket.acquire()
    clock.now += 5.0  # the call took 5 s: its token is back 60 s after its end, not its start
    permit.release()
    await bucket.flush()
    await _next_take_waits(bucket, 60.0, clock, sleeper)


async def test_a_caller_cancelled_while_redis_takes_its_token_gives_it_back(clients: list[object]) -> None:
    clock, name = ManualClock(1_000.0), key()
    bucket = SharedQuotaBucket(
        clients[0], name, "apps_script", None, 60.0, max_concurrent=1, clock=clock, poll=0.01
    )
    leaving = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)  # the take is on its way to Redis
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    other = SharedQuotaBucket(
        clients[1], name, "apps_script", None, 60.0, max_concurrent=1, clock=clock, poll=0.01
    )
    await settle(lambda: not bucket._pending and not bucket._in_flight)
    next_caller = asyncio.create_task(other.acquire())
    await settle(next_caller.done)  # the only slot is free again
    (await next_caller).release()
    await other.flush()


async def test_an_instances_callers_go_to_redis_by_priority(clients: list[object]) -> None:
    clock, sleeper = ManualClock(1_000.0), HeldSleep()
    bucket = SharedQuotaBucket(clients[0], key(), "llm_requests", 1, 60.0, clock=clock, sleep=sleeper)
    (await bucket.acquire()).release()  # the window's one token is used
    admitted: list[str] = []

    async def call(priority: Priority) -> None:
        call_priority.set(priority)
        (await bucket.acquire()).release()
        admitted.append(priority.value)

    tasks = []
    for priority in (Priority.LOW, Priority.NORMAL, Priority.URGENT):
        tasks.append(asyncio.create_task(call(priority)))
        await asyncio.sleep(0.01)  # this arrival order
    # The low call asked first and waits for the window; the others wait for their turn.
    for turn in range(3):
        await settle(lambda turn=turn: len(sleeper.delays) == turn + 1)  # type: ignore[misc]
        clock.now += 60.0
        sleeper.release_all()
        await settle(lambda turn=turn: len(admitted) == turn + 1)  # type: ignore[misc]
    await asyncio.gather(*tasks)
    assert admitted == ["low", "urgent", "normal"]
    await bucket.flush()
