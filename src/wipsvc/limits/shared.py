"""A quota bucket whose state lives in Redis, so that several instances share one account's quota
exactly (see :class:`~wipsvc.limits.bucket.QuotaBucket` for the in-process one it stands in for).

Each take is one Lua script, atomic in Redis: it checks the pause, the concurrency cap, the pacing
(GCRA) and the window of every bucket named — a user's bucket and, above it, the project's — and
takes from all of them or from none, answering how long to wait otherwise. The window is a sorted
set of the calls counted in it (score: when each counts from; a finish-anchored call's score moves
to its end when it is released), so no window of ``period`` seconds ever sees more than ``limit``
calls across all instances. A 429 seen by any instance sets the account's pause key: every
instance's next take waits it out. Within an instance, callers queue FIFO on a lock before they
ask Redis, as they would at the in-process bucket.

Time is Redis's own clock (``TIME``), one clock for every instance; tests pass a clock of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

from wipsvc.limits.admission import tell_admitted
from wipsvc.limits.bucket import Anchor, Permit, QuotaBucket
from wipsvc.limits.waiting import PriorityGate

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

# KEYS: per bucket its window (zset), running calls (zset of expiries), pause (string) and
# pacing (string: GCRA's theoretical arrival time). ARGV: now ("" = Redis's clock), amount,
# token, bucket count, then per bucket: limit, period, max_concurrent, spacing, burst, hold
# (0 = no limit / no cap). Answers {1, now, used} when taken, {0, wait, used} when not (wait -1:
# until a running call ends).
_TAKE = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local amount, token, n = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local wait, used = 0, 0
for i = 0, n - 1 do
  local k, a = i * 4, 5 + i * 6
  local limit, period = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local cap, spacing, burst = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local paused = tonumber(redis.call('GET', KEYS[k + 3]) or '0')
  if paused > now then wait = math.max(wait, paused - now) end
  if cap > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 2], '-inf', now)
    if redis.call('ZCARD', KEYS[k + 2]) >= cap and wait == 0 then wait = -1 end
  end
  if burst > 0 then
    local tat = tonumber(redis.call('GET', KEYS[k + 4]) or '0')
    local at = tat - (burst - 1) * spacing
    if at > now and wait >= 0 then wait = math.max(wait, at - now) end
  end
  if limit > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', now - period)
    local entries = redis.call('ZRANGE', KEYS[k + 1], 0, -1, 'WITHSCORES')
    local total = 0
    for j = 1, #entries, 2 do
      total = total + tonumber(string.match(entries[j], '|(%d+)$'))
    end
    if i == 0 then used = total end
    local excess = total + amount - limit
    if excess > 0 and wait >= 0 then
      for j = 1, #entries, 2 do
        excess = excess - tonumber(string.match(entries[j], '|(%d+)$'))
        if excess <= 0 then
          wait = math.max(wait, tonumber(entries[j + 1]) + period - now)
          break
        end
      end
    end
  end
end
if wait ~= 0 then return {0, tostring(wait), used} end
for i = 0, n - 1 do
  local k, a = i * 4, 5 + i * 6
  local limit, period = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local cap, spacing, burst = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local hold = tonumber(ARGV[a + 5])
  local ttl = math.ceil((period + hold) * 1000) + 1000
  if limit > 0 then
    redis.call('ZADD', KEYS[k + 1], now, token .. '|' .. amount)
    redis.call('PEXPIRE', KEYS[k + 1], ttl)
  end
  if cap > 0 then
    redis.call('ZADD', KEYS[k + 2], now + hold, token)
    redis.call('PEXPIRE', KEYS[k + 2], ttl)
  end
  if burst > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[k + 4]) or '0'), now) + amount * spacing
    redis.call('SET', KEYS[k + 4], tostring(tat), 'PX', ttl)
  end
end
return {1, tostring(now), used + amount}
"""

# KEYS: per bucket window, running. ARGV: now, token, amount, then per bucket: 1 if the call's
# tokens count from its end (finish anchor).
_RELEASE = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
for i = 0, #KEYS / 2 - 1 do
  redis.call('ZREM', KEYS[i * 2 + 2], ARGV[2])
  if ARGV[4 + i] == '1' then
    redis.call('ZADD', KEYS[i * 2 + 1], 'XX', now, ARGV[2] .. '|' .. ARGV[3])
  end
end
return 1
"""

# KEYS: pause. ARGV: now, seconds. The longest pause wins.
_PAUSE = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local until_ = now + tonumber(ARGV[2])
if until_ > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
end
return tostring(until_ - now)
"""

_instance_tokens = itertools.count()


class SharedQuotaBucket(QuotaBucket):
    """A :class:`QuotaBucket` kept in Redis under ``key``; ``enclosing`` (another shared bucket,
    e.g. the project's) is taken in the same atomic step."""

    def __init__(
        self,
        redis: Any,  # redis.asyncio.Redis
        key: str,
        name: str,
        limit: int | None,
        period: float = 60.0,
        *,
        anchor: Anchor = "start",
        max_concurrent: int | None = None,
        burst: int | None = None,
        backoff: float = 1.0,
        max_backoff: float = 32.0,
        jitter: Callable[[], float] = random.random,
        enclosing: SharedQuotaBucket | None = None,
        longest_call: float = 600.0,
        poll: float = 0.05,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        ageing: float | None = None,
    ) -> None:
        super().__init__(
            name,
            limit,
            period,
            anchor=anchor,
            max_concurrent=max_concurrent,
            burst=burst,
            backoff=backoff,
            max_backoff=max_backoff,
            jitter=jitter,
            ageing=ageing,
        )
        self.key = key
        self.shared_enclosing = enclosing
        self._redis = redis
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_RELEASE)
        self._set_pause = redis.register_script(_PAUSE)
        self._longest_call = longest_call  # a crashed instance's running call counts this long at most
        self._poll = poll  # how often to ask again while only a running call's end can free room
        self._clock = clock
        self._sleep = sleep
        # This instance's callers take turns at Redis by priority, then in arrival order.
        self._turns = PriorityGate(ageing)
        self._released = asyncio.Event()
        self._pending: set[asyncio.Task[Any]] = set()
        self._prefix = f"{os.getpid()}.{random.getrandbits(48):012x}"
        self.used = 0  # tokens in the window at the last take, across all instances

    def share(self, parts: int) -> None:
        """Shared exactly through Redis: no instance needs a part of its own."""

    def _chain(self) -> list[SharedQuotaBucket]:
        chain: list[SharedQuotaBucket] = [self]
        while chain[-1].shared_enclosing is not None:
            chain.append(chain[-1].shared_enclosing)
        return chain

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    async def acquire(self, amount: int = 1) -> Permit:
        amount = max(0, amount)
        if self.limit is not None:
            amount = min(amount, self.limit)
        chain = self._chain()
        keys: list[str] = []
        args: list[Any] = [self._now_arg(), amount, "", len(chain)]
        for bucket in chain:
            keys += [f"{bucket.key}:{part}" for part in ("window", "running", "pause", "pace")]
            args += [
                bucket.limit or 0,
                bucket.period,
                bucket.max_concurrent or 0,
                bucket._spacing,
                bucket.burst or 0,
                self._longest_call,
            ]
        token = f"{self._prefix}.{next(_instance_tokens)}"
        args[2] = token
        async with self._turns:
            while True:
                args[0] = self._now_arg()
                taking = asyncio.ensure_future(self._take(keys=keys, args=args))
                try:
                    taken, value, used = await asyncio.shield(taking)
                except asyncio.CancelledError:
                    # Redis may take the tokens after our caller left: give them back then.
                    taking.add_done_callback(lambda done: self._give_back_if_taken(done, token, amount))
                    raise
                self.used = int(used)
                if int(taken):
                    break
                wait = float(value)
                if wait < 0:  # only a running call's end frees room: ours, or another instance's
                    self._released.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._released.wait(), self._poll)
                else:
                    await self._sleep(wait)
        self._in_flight += 1
        self.admitted += 1
        if self.max_concurrent is not None:
            tell_admitted(self.name)
        return Permit(self, amount, self._local_now(), token)

    def _local_now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _release(self, permit: Permit) -> None:
        self._in_flight -= 1
        if not permit.throttled_once and permit.admitted_at > self._pause_started:
            self._streak = 0
        chain = self._chain()
        keys: list[str] = []
        for bucket in chain:
            keys += [f"{bucket.key}:window", f"{bucket.key}:running"]
        anchors = ["1" if bucket.anchor == "finish" else "0" for bucket in chain]
        self._spawn(self._give_back(keys=keys, args=[self._now_arg(), permit.token, permit.amount, *anchors]))
        self._released.set()

    def _give_back_if_taken(self, taking: asyncio.Future[Any], token: str, amount: int) -> None:
        if taking.cancelled() or taking.exception() is not None or not int(taking.result()[0]):
            return
        self._in_flight += 1  # as if admitted: _release undoes it with the rest
        self._release(Permit(self, amount, self._local_now(), token))

    def _pause_until(self, now: float, until: float) -> None:
        """A 429 here (or ``pause``): every instance's next take waits until then too."""
        if until > self._paused_until:
            if now >= self._paused_until:
                self._pause_started = now
            self._paused_until = until
        seconds = max(0.0, until - now)
        self._spawn(self._set_pause(keys=[f"{self.key}:pause"], args=[self._now_arg(), seconds]))

    def _spawn(self, call: Awaitable[Any]) -> None:
        async def run() -> None:
            await call

        task = asyncio.get_running_loop().create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait for the releases and pauses still on their way to Redis."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def snapshot(self) -> dict[str, Any]:
        state = super().snapshot()
        available = None if self.limit is None else max(0, self.limit - self.used)
        return {**state, "available": available, "shared_by": "redis"}
