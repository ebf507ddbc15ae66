"""Several `wipsvc serve` processes on one PostgreSQL and one Redis, and a look at their database.

Each instance is a child process with its own instance id, so a test can pause one (SIGSTOP, like
a long garbage-collection pause or a frozen VM), kill one (SIGKILL) or resume one, and read from
PostgreSQL who owns a job now, its ledger and its stored events.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncpg

from tests.support.server_process import ServerProcess, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
# Server settings for a take-over in bounded time: a margin before the lease ends, and no call to
# Sheets or PostgreSQL that outlives a frozen owner's lease by much. Logged at info, so that a
# test can count what the instances did.
FAILOVER_SETTINGS: dict[str, Any] = {
    "lease_safety_margin_seconds": 1.0,
    "sheets_timeout_seconds": 0.8,
    "db_statement_timeout_seconds": 2.0,
    "db_idle_in_transaction_timeout_seconds": 1.0,
    "log_level": "info",
}


class Cluster:
    """``with Cluster(["a", "b", "c"], env, tmp_path) as cluster: cluster["a"].pause() …``"""

    def __init__(
        self,
        names: Sequence[str],
        env: Mapping[str, str],
        workdir: Path,
        overrides: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """``overrides`` gives some instances settings of their own (by name)."""
        self.servers = {
            name: ServerProcess(
                {**env, **(overrides or {}).get(name, {}), "WIPSVC_INSTANCE_ID": name},
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

    def database_ports(self) -> dict[int, str]:
        """Which instance each local port connected to PostgreSQL belongs to (by its pid)."""
        names = {server.pid: name for name, server in self.servers.items() if server.running}
        listing = subprocess.run(
            ["ss", "-tnpH", "state", "established", "( dport = :5432 )"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        ports: dict[int, str] = {}
        for line in listing.splitlines():
            local = re.search(r"127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:5432", line)
            pid = re.search(r"pid=(\d+)", line)
            if local and pid and int(pid.group(1)) in names:
                ports[int(local.group(1))] = names[int(pid.group(1))]
        return ports

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

    async def query(self, sql: str, *args: object) -> list[Any]:
        """The rows of any read-only query (asyncpg records, read by column name)."""
        rows: list[Any] = await self._conn.fetch(sql, *args)
        return rows

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

    async def sessions(self, ports: Mapping[int, str]) -> str:
        """The instances' database sessions now: state, what they wait for, who blocks them, and
        the locks they hold on jobs (to see what holds a job when a take-over is late)."""
        rows = await self._conn.fetch(
            """
            SELECT a.pid, a.client_port, a.state, a.wait_event_type, a.wait_event,
                   pg_blocking_pids(a.pid) AS blocked_by,
                   round(extract(epoch FROM now() - a.xact_start)::numeric, 2) AS xact_age,
                   round(extract(epoch FROM now() - a.state_change)::numeric, 2) AS state_age,
                   left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160) AS query,
                   (SELECT string_agg(l.locktype || ':' || l.mode
                                      || CASE WHEN l.granted THEN '' ELSE '(waiting)' END
                                      || coalesce(':' || l.relation::regclass::text, ''), ', ')
                      FROM pg_locks l WHERE l.pid = a.pid AND l.locktype <> 'virtualxid'
                        AND (l.relation IS NULL OR l.relation::regclass::text NOT LIKE 'pg_%')) AS locks
              FROM pg_stat_activity a
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
             ORDER BY a.client_port
            """
        )
        jobs = await self._conn.fetch(
            "SELECT job_id, status, owner, round(extract(epoch FROM lease_expires_at - now())::numeric, 2)"
            " AS lease_left FROM wip_jobs WHERE status = 'running'"
        )
        lines = [f"  job {dict(job)}" for job in jobs]
        for row in rows:
            who = ports.get(row["client_port"], "?")
            lines.append(f"  [{who}] " + ", ".join(f"{k}={v}" for k, v in row.items()))
        return "\n".join(lines)


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    assert isinstance(loaded, dict)
    return loaded
