"""Errors as a job or a product may show them: one line, and never a database's statement."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from wipsvc.text import clean_text

MAX_ERROR_CHARS = 1000


def describe_error(error: BaseException, *, with_type: bool = False) -> str:
    """``error`` on one line. A database error names only its kind: its message quotes the SQL
    statement and its parameters, which may hold anyone's data."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]  # a task group's wrapping says nothing about the cause
    if isinstance(error, SQLAlchemyError):
        cause = getattr(error, "orig", None) or error
        return f"database error ({type(cause).__name__})"
    text = " ".join(str(error).split()) or type(error).__name__
    if with_type and text != type(error).__name__:
        text = f"{type(error).__name__}: {text}"
    return clean_text(text, limit=MAX_ERROR_CHARS)


# PostgreSQL's SQLSTATEs of a server that cannot serve now, whatever the statement: a statement
# or lock timeout and a cancel (57014, 55P03), a conflict that a retry resolves (40001, 40P01), a
# server shutting down or starting (57P01-57P03), a lost connection (class 08), exhausted
# resources (class 53). asyncpg reports them as plain database errors, not OperationalError.
_OUTAGE_SQLSTATES = frozenset({"57014", "55P03", "40001", "40P01", "57P01", "57P02", "57P03"})
_OUTAGE_SQLSTATE_CLASSES = ("08", "53")


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` is the database being unavailable (locked, gone, a dropped connection,
    a statement timeout), which passes, rather than a value it refuses, which would be refused
    again."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(sqlstate, str) and (
        sqlstate in _OUTAGE_SQLSTATES or sqlstate.startswith(_OUTAGE_SQLSTATE_CLASSES)
    )
