"""Database errors translated into the core's error types, at the store's boundary.

Every repository method runs inside `database_errors()`, so that callers see
`MissingTablesError`, `DatabaseUnavailableError` (or its kinds: access denied,
no such database) or `DatabaseError`, each with the driver's one-line reason,
and never a SQLAlchemy exception.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, NoSuchTableError, SQLAlchemyError

from usage_core.errors import (
    DatabaseAccessDeniedError,
    DatabaseError,
    DatabaseMissingError,
    DatabaseUnavailableError,
    MissingTablesError,
)

P = ParamSpec("P")
R = TypeVar("R")

# MySQL/MariaDB error numbers, PostgreSQL SQLSTATEs: the error class and the reason in words.
_Refusal = tuple[type[DatabaseUnavailableError], str]
_DOWN = DatabaseUnavailableError
_DENIED = DatabaseAccessDeniedError
_NO_DATABASE: _Refusal = (DatabaseMissingError, "the database does not exist")
_MYSQL_MISSING_TABLE = {1146}
_MYSQL_UNAVAILABLE: dict[int, _Refusal] = {
    1044: (_DENIED, "access denied to the database"),
    1045: (_DENIED, "access denied (wrong user or password)"),
    1049: _NO_DATABASE,
    2002: (_DOWN, "cannot connect to the server"),
    2003: (_DOWN, "cannot connect to the server"),
    2005: (_DOWN, "unknown database host"),
    2006: (_DOWN, "the server has gone away"),
    2013: (_DOWN, "lost the connection to the server"),
}
_PG_MISSING_TABLE = {"42P01"}
_PG_UNAVAILABLE: dict[str, _Refusal] = {
    "3D000": _NO_DATABASE,
    "28P01": (_DENIED, "access denied (wrong user or password)"),
    "28000": (_DENIED, "access denied"),
    "57P01": (_DOWN, "the server terminated the connection"),
    "08001": (_DOWN, "cannot connect to the server"),
    "08006": (_DOWN, "the connection to the server failed"),
}


_PG_CONNECT_REFUSALS: tuple[tuple[str, _Refusal], ...] = (
    ("fatal:  database", _NO_DATABASE),
    ("fatal:  role", (_DENIED, "access denied (unknown user)")),
    ("password authentication failed", (_DENIED, "access denied (wrong user or password)")),
    ("no pg_hba.conf entry", (_DENIED, "access denied (not allowed by pg_hba.conf)")),
)


def _refused(refusal: _Refusal, reason: str) -> DatabaseUnavailableError:
    kind, why = refusal
    return kind(f"{why}: {reason}")


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
            return _refused(_PG_UNAVAILABLE[sqlstate], reason)
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code in _MYSQL_MISSING_TABLE:
        return MissingTablesError(reason)
    if code is not None and code in _MYSQL_UNAVAILABLE:
        return _refused(_MYSQL_UNAVAILABLE[code], reason)
    lowered = reason.lower()
    # PostgreSQL refuses a connection before any SQLSTATE reaches psycopg.
    for marker, refusal in _PG_CONNECT_REFUSALS:
        if marker in lowered:
            return _refused(refusal, reason)
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
