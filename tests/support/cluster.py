"""Several `wipsvc serve` processes on one PostgreSQL and one Redis, and a look at their database.

Each instance is a child process with its own instance id, so a test can pause one (SIGSTOP, like
a long garbage-collection pause or a frozen VM), kill one (SIGKILL) or resume one, and read from
PostgreSQL who owns a job now, its ledger and its stored events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncpg

from tests.support.server_process import ServerProcess, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


class Cluster:
    """``with Cluster(["a", "b", "c"], env, tmp_path) as cluster: cluster["a"].pause() …``"""

    def __init__(self, names: Sequence[str], env: Mapping[str, str], workdir: Path) -> None:
        self.servers = {
            name: ServerProcess(
                {**env, "WIPSVC_INSTANCE_ID": name},
                port=free_port(),
                cwd=workdir,
                log_path=workdir / f"instance-{name}.log",
            )
            for name in names
        }

    def __getitem__(self, name: str) -> ServerProcess:
        return self.servers[name]

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
        for server in self.servers.values():
            server.wait_ready()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def other_than(self, name: str) -> ServerProcess:
        """A running, unpaused instance other than ``name`` (to talk to the API through)."""
        for other, server in self.servers.items():
            if other != name and server.running and not server.paused:
                return server
        raise RuntimeError(f"no instance other than {name} is running")

    def log_count(self, name: str, text: str) -> int:
        try:
            return self.servers[name].log_path.read_text(encoding="utf-8", errors="replace").count(text)
        except FileNotFoundError:
            return 0

    def log_tails(self, lines: int = 80) -> str:
        return "\n".join(
            f"----- instance {name} -----\n{server.log_tail(lines)}" for name, server in self.servers.items()
        )

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ClusterDatabase:
    """Read-only queries on the instances' PostgreSQL (``postgresql+asyncpg://`` URLs accepted)."""

    def __init__(self, database_url: str) -> None:
        self._dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self._conn: Any = None

    async def __aenter__(self) -> Self:
        self._conn = await asyncpg.connect(self._dsn)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._conn.close()

    async def owner(self, job_id: str) -> str | None:
        owner: str | None = await self._conn.fetchval("SELECT owner FROM wip_jobs WHERE job_id = $1", job_id)
        return owner

    async def status(self, job_id: str) -> str | None:
        status: str | None = await self._conn.fetchval(
            "SELECT status FROM wip_jobs WHERE job_id = $1", job_id
        )
        return status

    async def ledger(self, job_id: str) -> list[tuple[int, str, int]]:
        rows = await self._conn.fetch(
            "SELECT wip_id, status, attempts FROM job_items WHERE job_id = $1 ORDER BY position", job_id
        )
        return [(int(row["wip_id"]), str(row["status"]), int(row["attempts"])) for row in rows]

    async def events(self, job_id: str) -> list[tuple[int, dict[str, Any]]]:
        rows = await self._conn.fetch(
            "SELECT seq, payload FROM job_events WHERE job_id = $1 ORDER BY seq", job_id
        )
        return [(int(row["seq"]), _json(row["payload"])) for row in rows]


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    assert isinstance(loaded, dict)
    return loaded
