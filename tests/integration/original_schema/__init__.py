"""VPNMarket's database schema as its Laravel 12 migrations create it, per dialect.

The SQL files next to this module hold the DDL for the tables usage-sync reads and
writes (`users`, `settings`, `panels`, `resellers`, `reseller_configs`,
`reseller_config_events`, `audit_logs`, and at HEAD
`reseller_usage_snapshots`), one statement per `;` at a line end:

- `<dialect>_c696ca1.sql`: the schema at commit c696ca1, the reference commit;
- `<dialect>_head_additions.sql`: what the migrations after it, up to HEAD (81c4845),
  add on top.

Each file's header says where it departs from what Laravel really produces on that
database, and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, Engine

__all__ = [
    "DIALECTS",
    "OriginalDatabase",
    "apply_head_additions",
    "apply_original_schema",
    "statements",
]

_HERE = Path(__file__).parent

#: Accepted dialect names, mapped to the prefix of their SQL files.
DIALECTS = {
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgresql",
}


@dataclass(frozen=True)
class OriginalDatabase:
    """A fresh database holding the original app's schema."""

    backend: str
    """The test id: `sqlite`, `mariadb` or `postgresql`."""
    dialect: str
    """SQLAlchemy's dialect name: `sqlite`, `mysql` or `postgresql`."""
    url: str
    """A SQLAlchemy URL for this database, password included."""
    engine: Engine
    """An engine on `url`; on SQLite it turns foreign keys on, as Laravel does."""
    head: bool
    """Whether HEAD's additions (admin_forgiven_bytes, wallet columns, …) are applied."""
    name: str
    """The database's name, or the SQLite file's path."""


_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_FOREIGN_KEYS_PRAGMA = re.compile(r"^pragma\s+foreign_keys\s*=", re.IGNORECASE)


def _file_prefix(dialect_name: str) -> str:
    try:
        return DIALECTS[dialect_name]
    except KeyError:
        raise ValueError(
            f"unknown dialect {dialect_name!r}; expected one of {sorted(DIALECTS)}"
        ) from None


@cache
def _read(prefix: str, part: str) -> tuple[str, ...]:
    text = (_HERE / f"{prefix}_{part}.sql").read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return tuple(s.strip() for s in _STATEMENT_END.split(code) if s.strip())


def statements(dialect_name: str, *, head: bool = False) -> list[str]:
    """The DDL statements for the c696ca1 schema, followed by HEAD's when `head` is true."""
    prefix = _file_prefix(dialect_name)
    parts = ("c696ca1", "head_additions") if head else ("c696ca1",)
    return [s for part in parts for s in _read(prefix, part)]


def apply_original_schema(
    connection_or_engine: Connection | Engine, dialect_name: str, *, head: bool = False
) -> None:
    """Create the original app's tables in an empty database: c696ca1's, plus HEAD's if asked.

    Given an Engine, the work is committed. Given a Connection, committing is the
    caller's job, though MySQL/MariaDB commit every DDL statement on their own. On SQLite
    with foreign keys on, the HEAD part rebuilds `resellers` with foreign keys off, which
    SQLite only allows outside a transaction, so the connection must not be in one.
    """
    _apply(connection_or_engine, dialect_name, statements(dialect_name, head=head))


def apply_head_additions(connection_or_engine: Connection | Engine, dialect_name: str) -> None:
    """Migrate a database holding the c696ca1 schema (and perhaps rows) to HEAD's."""
    _apply(
        connection_or_engine,
        dialect_name,
        list(_read(_file_prefix(dialect_name), "head_additions")),
    )


def _apply(target: Connection | Engine, dialect_name: str, ddl: list[str]) -> None:
    if isinstance(target, Engine):
        with target.connect() as connection:
            _run(connection, dialect_name, ddl)
            connection.commit()
    else:
        _run(target, dialect_name, ddl)


def _run(connection: Connection, dialect_name: str, ddl: list[str]) -> None:
    prefix = _file_prefix(dialect_name)
    actual = _file_prefix(connection.dialect.name)
    if actual != prefix:
        raise ValueError(
            f"dialect {dialect_name!r} does not match the connection's "
            f"({connection.dialect.name!r})"
        )
    if prefix == "sqlite":
        _run_sqlite(connection, ddl)
        return
    for statement in ddl:
        connection.exec_driver_sql(statement)


def _run_sqlite(connection: Connection, ddl: list[str]) -> None:
    toggles = [s for s in ddl if _FOREIGN_KEYS_PRAGMA.match(s)]
    foreign_keys_on = bool(connection.exec_driver_sql("pragma foreign_keys").scalar())
    if not toggles or not foreign_keys_on:
        # Laravel emits the pragmas only when foreign keys are on; so do we.
        for statement in ddl:
            if statement not in toggles:
                connection.exec_driver_sql(statement)
        return

    raw = connection.connection.driver_connection
    if raw is None or raw.in_transaction:
        raise RuntimeError(
            "SQLite can only turn foreign keys off outside a transaction, and this "
            "connection is in one: pass the Engine, or a Connection that has not written yet"
        )
    # The sqlite3 module opens a transaction before any INSERT, and a pragma issued
    # inside it is ignored; in autocommit mode both pragmas take effect.
    saved = raw.isolation_level
    raw.isolation_level = None
    try:
        for statement in ddl:
            connection.exec_driver_sql(statement)
    finally:
        if not connection.exec_driver_sql("pragma foreign_keys").scalar():
            connection.exec_driver_sql("pragma foreign_keys = 1")
        raw.isolation_level = saved
