"""Creating the SQLAlchemy engine for the app's database."""

from __future__ import annotations

import json

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from usage_core.errors import ConfigurationError

# Bare scheme names pick the driver the extras install.
_DRIVERS = {
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
}
_EXTRAS = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgres"}


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def create_store_engine(url: str) -> Engine:
    """An engine for `url`; ConfigurationError (without the password) when unusable."""
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
        # Wait for a writer instead of failing at once when the file is busy.
        options["connect_args"] = {"timeout": 30}
    try:
        return create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError) as exc:
        extra = _EXTRAS.get(backend, backend)
        msg = f"the {backend} driver is not installed: pip install 'usage-sync[{extra}]'"
        raise ConfigurationError(msg) from exc


def dialect_of(engine: Engine) -> str:
    """`sqlite`, `mysql` (MySQL and MariaDB) or `postgresql`."""
    name = engine.dialect.name
    return "mysql" if name == "mariadb" else name
