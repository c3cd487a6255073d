"""Database errors translated into the core's error types, at the store's boundary.

Every repository method runs inside `database_errors()`, so that callers see
`MissingTablesError`, `DatabaseUnavailableError` or `DatabaseError`, each with
the driver's one-line reason, and never a SQLAlchemy exception.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, NoSuchTableError, SQLAlchemyError

from usage_core.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    MissingTablesError,
)

P = ParamSpec("P")
R = TypeVar("R")

# MySQL/MariaDB error numbers, PostgreSQL SQLSTATEs.
_MYSQL_MISSING_TABLE = {1146}
_MYSQL_UNAVAILABLE = {
    1044: "access denied to the database",
    1045: "access denied (wrong user or password)",
    1049: "the database does not exist",
    2002: "cannot connect to the server",
    2003: "cannot connect to the server",
    2005: "unknown database host",
    2006: "the server has gone away",
    2013: "lost the connection to the server",
}
_PG_MISSING_TABLE = {"42P01"}
_PG_UNAVAILABLE = {
    "3D000": "the database does not exist",
    "28P01": "access denied (wrong user or password)",
    "28000": "access denied",
    "57P01": "the server terminated the connection",
    "08001": "cannot connect to the server",
    "08006": "the connection to the server failed",
}


_PG_CONNECT_REFUSALS = (
    ("fatal:  database", "the database does not exist"),
    ("fatal:  role", "access denied (unknown user)"),
    ("password authentication failed", "access denied (wrong user or password)"),
    ("no pg_hba.conf entry", "access denied (not allowed by pg_hba.conf)"),
)


def _reason(exc: BaseException) -> str:
    """The driver's message, first line only (no SQL, no parameters)."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def translate(exc: SQLAlchemyError) -> DatabaseError:
    """The core error for a SQLAlchemy exception."""
    if isinstance(exc, NoSuchTableError):
        return MissingTablesError(f"no table {exc}")
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    if orig is None:
        return DatabaseError(_reason(exc))
    reason = _reason(orig)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_MISSING_TABLE:
            return MissingTablesError(reason)
        if sqlstate in _PG_UNAVAILABLE:
            return DatabaseUnavailableError(f"{_PG_UNAVAILABLE[sqlstate]}: {reason}")
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code in _MYSQL_MISSING_TABLE:
        return MissingTablesError(reason)
    if code is not None and code in _MYSQL_UNAVAILABLE:
        return DatabaseUnavailableError(f"{_MYSQL_UNAVAILABLE[code]}: {reason}")
    lowered = reason.lower()
    # PostgreSQL refuses a connection before any SQLSTATE reaches psycopg.
    for marker, why in _PG_CONNECT_REFUSALS:
        if marker in lowered:
            return DatabaseUnavailableError(f"{why}: {reason}")
    if "no such table" in lowered:  # SQLite has no error codes for this
        return MissingTablesError(reason)
    if "unable to open database file" in lowered:
        return DatabaseUnavailableError(f"cannot open the SQLite file: {reason}")
    # SQLAlchemy marks a connection that was up and then dropped (killed, server gone).
    lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
    if lost or (sqlstate is None and "connect" in lowered):
        why = "lost the connection to the server" if lost else "cannot connect to the server"
        return DatabaseUnavailableError(f"{why}: {reason}")
    return DatabaseError(reason)


@contextmanager
def database_errors() -> Iterator[None]:
    """Re-raise SQLAlchemy errors as the core's database errors."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise translate(exc) from exc


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """A store method whose SQLAlchemy errors reach callers as core errors."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with database_errors():
            return method(*args, **kwargs)

    return wrapper
