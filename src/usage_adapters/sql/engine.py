"""Creating the SQLAlchemy engine for the app's database."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from usage_core.errors import ConfigurationError, DatabaseMissingError

# Bare scheme names pick the driver the extras install.
_DRIVERS = {
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
}
CONNECT_TIMEOUT_S = 10
_EXTRAS = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgres"}


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def create_store_engine(url: str, *, create_sqlite_file: bool = False) -> Engine:
    """An engine for `url`; ConfigurationError (without the password) when unusable.

    An SQLite file that does not exist is DatabaseMissingError unless
    `create_sqlite_file`: SQLite would create an empty one on the first connection.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        msg = "USAGE_SYNC_DATABASE_URL is not a valid database URL"
        raise ConfigurationError(msg) from exc
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "mysql", "mariadb", "postgresql"):
        msg = f"unsupported database {backend!r}: use SQLite, MariaDB/MySQL or PostgreSQL"
        raise ConfigurationError(msg)
    # JSON documents as the app's json_encode writes them: compact.
    options: dict[str, object] = {"pool_pre_ping": True, "json_serializer": _compact_json}
    if backend == "sqlite":
        if not create_sqlite_file:
            _require_sqlite_file(parsed.database, uri=parsed.query.get("uri") == "true")
        # Wait for a writer instead of failing at once when the file is busy.
        options["connect_args"] = {"timeout": 30}
    elif "connect_timeout" not in parsed.query:
        # A server that drops packets is reported in seconds, not after the system's TCP timeout.
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError) as exc:
        extra = _EXTRAS.get(backend, backend)
        msg = f"the {backend} driver is not installed: pip install 'usage-sync[{extra}]'"
        raise ConfigurationError(msg) from exc


def _require_sqlite_file(database: str | None, *, uri: bool) -> None:
    if uri or not database or database == ":memory:":
        return
    path = Path(database)
    if not path.exists():
        msg = (
            f"the SQLite file {str(path.resolve())!r} does not exist "
            "(`usage-sync db init` creates a standalone one)"
        )
        raise DatabaseMissingError(msg)


def dialect_of(engine: Engine) -> str:
    """`sqlite`, `mysql` (MySQL and MariaDB) or `postgresql`."""
    name = engine.dialect.name
    return "mysql" if name == "mariadb" else name
