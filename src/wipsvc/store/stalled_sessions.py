"""Ending the database sessions that a frozen instance left waiting in the middle of a statement.

PostgreSQL's ``idle_in_transaction_session_timeout`` counts only the wait that follows a finished
statement, and ``statement_timeout`` is ignored while the server waits for its client. asyncpg
prepares a statement with Parse/Describe/Flush and sends Bind/Execute/Sync only once the answer is
back: an instance frozen in that gap (a long pause, a frozen VM, a partition) leaves its session
``active``, waiting to read from its client (``ClientRead``), and holding every lock of its open
transaction, such as the job row that a fenced write locked first. No timeout ends that session,
and the claim's ``SKIP LOCKED`` passes over the row: the job stays with the frozen owner until its
connection dies. A server blocked sending a result to a frozen client (``ClientWrite``) is stuck
the same way. (PostgreSQL 17's ``transaction_timeout`` would end both; 15 and 16 have nothing.)

So every instance, at each claim round, ends the service's sessions that have waited on their
client that long: reading, for longer than the idle-in-transaction timeout (a live client sends
Bind one round trip after Parse); writing, since longer than the statement timeout plus that (the
statement timeout cancels a live statement as soon as its write goes through, so by then the
client has read nothing for the idle timeout). Ending such a session is what the idle timeout does
to an idle one: its transaction rolls back, and the instance finds its connection gone when it
wakes up.
"""

from __future__ import annotations

import sqlalchemy as sa

from wipsvc.store.database import Database

# The service's own sessions say so (see `engine.create_engine`): no other client's session is
# ever ended, whatever it waits for.
APPLICATION_NAME = "wipsvc"

_STALLED = sa.text(
    """
    SELECT pid, pg_terminate_backend(pid) AS ended
      FROM pg_stat_activity
     WHERE datname = current_database()
       AND pid <> pg_backend_pid()
       AND application_name = :application_name
       AND state = 'active'
       AND wait_event_type = 'Client'
       AND ((wait_event = 'ClientRead'
             AND state_change < clock_timestamp() - make_interval(secs => :read_after))
         OR (wait_event = 'ClientWrite' AND :write_after > 0
             AND state_change < clock_timestamp() - make_interval(secs => :write_after)))
    """
)


class StalledSessions:
    """Ends the service's sessions stalled on their client mid-statement (PostgreSQL only), given
    the connections' idle-in-transaction and statement timeouts: none when the first is off."""

    def __init__(self, db: Database, *, idle_timeout: float = 0.0, statement_timeout: float = 0.0) -> None:
        self._db = db
        self._read_after = idle_timeout
        self._write_after = statement_timeout + idle_timeout if statement_timeout > 0 else 0.0

    async def end(self) -> list[int]:
        """End the stalled sessions now; returns the backend pids ended."""
        if self._db.is_sqlite or self._read_after <= 0:
            return []
        bounds = {"read_after": self._read_after, "write_after": self._write_after}
        async with self._db.write() as conn:
            rows = await conn.execute(_STALLED, {"application_name": APPLICATION_NAME, **bounds})
            return [int(pid) for pid, ended in rows if ended]
