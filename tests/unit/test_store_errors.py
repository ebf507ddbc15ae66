"""Which database errors are an outage (the job pauses and is resumed) and which a refusal of
one product's values (that product fails alone): `wipsvc.store.is_outage`."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from wipsvc.store import is_outage


class DriverError(Exception):
    """A driver's error carrying PostgreSQL's SQLSTATE, as asyncpg's (``sqlstate``) and
    psycopg2's (``pgcode``) do."""

    def __init__(self, sqlstate: str, *, attribute: str = "sqlstate") -> None:
        super().__init__(f"error {sqlstate}")
        setattr(self, attribute, sqlstate)


def _wrapped(sqlstate: str, *, attribute: str = "sqlstate") -> sqlalchemy.exc.DBAPIError:
    # asyncpg's errors reach SQLAlchemy as plain DBAPIError, whatever the SQLSTATE.
    return sqlalchemy.exc.DBAPIError("UPDATE wip_jobs SET …", {}, DriverError(sqlstate, attribute=attribute))


@pytest.mark.parametrize(
    "sqlstate",
    [
        "57014",  # statement timeout (query_canceled)
        "55P03",  # lock timeout
        "40001",  # serialization failure
        "40P01",  # deadlock
        "57P01",  # the server is shutting down
        "08006",  # connection failure
        "53300",  # too many connections
    ],
)
def test_a_server_that_cannot_serve_now_is_an_outage(sqlstate: str) -> None:
    assert is_outage(_wrapped(sqlstate))
    assert is_outage(_wrapped(sqlstate, attribute="pgcode"))


@pytest.mark.parametrize(
    "sqlstate",
    [
        "23505",  # unique violation
        "23503",  # foreign key violation
        "22001",  # value too long
        "22P02",  # invalid text representation
        "42703",  # undefined column
    ],
)
def test_a_refused_value_or_statement_is_not_an_outage(sqlstate: str) -> None:
    assert not is_outage(_wrapped(sqlstate))


def test_errors_without_a_sqlstate() -> None:
    assert is_outage(sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert is_outage(sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection closed")))
    invalidated = sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert is_outage(invalidated)
    assert not is_outage(sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("no sqlstate")))
    assert not is_outage(ValueError("not a database error"))
