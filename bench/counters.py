"""What the overhead benchmark counts: time awaiting a service's objects, and its SQL."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event


class Timings:
    """Wall time spent awaiting an object's coroutine methods, by label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, label: str) -> None:
        for name in dir(owner):
            method = getattr(owner, name)
            if name.startswith("_") or not asyncio.iscoroutinefunction(method):
                continue
            setattr(owner, name, self._timed(method, label))

    def _timed(self, method: Callable[..., Awaitable[Any]], label: str) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        return timed


class SqlCounter:
    """Statements sent (an ``executemany`` is one) and transactions committed, counted with
    SQLAlchemy's engine events."""

    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0

    def attach(self, engine: Any) -> None:
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def reset(self) -> None:
        self.statements = self.commits = 0

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _commit(self, *_: Any) -> None:
        self.commits += 1
