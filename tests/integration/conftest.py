"""Fixtures giving each test a fresh database shaped like VPNMarket's.

`original_db` and `original_db_head` run a test once per backend (ids `sqlite`,
`mariadb`, `postgresql`). Each run gets a new, uniquely named database (a file under
`tmp_path` for SQLite, `CREATE DATABASE usync_<random>` on the servers) holding the
original app's schema at c696ca1, plus HEAD's additions for `original_db_head`. The
database is dropped after the test.

The servers are found at USAGE_SYNC_TEST_MYSQL_URL and USAGE_SYNC_TEST_POSTGRES_URL
(server-level SQLAlchemy URLs; a database in them is only used to connect), by default
the local MariaDB and PostgreSQL. A server that does not answer skips the test, or
fails it when CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from original_schema import OriginalDatabase, apply_original_schema
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

BACKENDS = ("sqlite", "mariadb", "postgresql")

MYSQL_URL_VARIABLE = "USAGE_SYNC_TEST_MYSQL_URL"
POSTGRES_URL_VARIABLE = "USAGE_SYNC_TEST_POSTGRES_URL"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"


@dataclass(frozen=True)
class _Server:
    label: str
    variable: str
    default: str
    start: str


_SERVERS = {
    "mariadb": _Server(
        label="MariaDB",
        variable=MYSQL_URL_VARIABLE,
        default=DEFAULT_MYSQL_URL,
        start="start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    ),
    "postgresql": _Server(
        label="PostgreSQL",
        variable=POSTGRES_URL_VARIABLE,
        default=DEFAULT_POSTGRES_URL,
        start="pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
}
_CONNECT_TIMEOUT_SECONDS = 5


def running_under_ci() -> bool:
    """Whether the environment says this is a CI run (CI=true)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this directory as an integration test."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


def server_url(backend: str) -> URL:
    """The server-level URL for `mariadb` or `postgresql`, from the environment or default."""
    server = _SERVERS[backend]
    return make_url(os.environ.get(server.variable) or server.default)


def _admin_engine(backend: str) -> Engine:
    url = server_url(backend)
    if backend == "postgresql" and not url.database:
        url = url.set(database="postgres")
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS},
    )


_unreachable: dict[str, str | None] = {}


def _require_server(backend: str) -> None:
    """Skip the test (fail it under CI=true) when the backend's server does not answer."""
    if backend not in _unreachable:
        _unreachable[backend] = None
        engine = _admin_engine(backend)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("select 1")
        except (SQLAlchemyError, OSError) as exc:
            server = _SERVERS[backend]
            shown = server_url(backend).render_as_string(hide_password=True)
            _unreachable[backend] = (
                f"{server.label} is not reachable at {shown} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0]}). "
                f"Start it with `.ci/services` (or `{server.start}`), "
                f"or set {server.variable} to a server-level URL of a running one."
            )
        finally:
            engine.dispose()
    message = _unreachable[backend]
    if message is not None:
        if running_under_ci():
            pytest.fail(f"CI=true, so not skipping: {message}", pytrace=False)
        pytest.skip(message)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("pragma foreign_keys = 1")
    cursor.close()


def _fresh_database(backend: str, tmp_path: Path, *, head: bool) -> Iterator[OriginalDatabase]:
    if backend == "sqlite":
        path = tmp_path / "app.sqlite"
        url = f"sqlite:///{path}"
        engine = create_engine(url)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        try:
            apply_original_schema(engine, "sqlite", head=head)
            yield OriginalDatabase(backend, "sqlite", url, engine, head, str(path))
        finally:
            engine.dispose()
        return

    _require_server(backend)
    name = f"usync_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(backend)
    if backend == "mariadb":
        create = f"create database `{name}` character set utf8mb4 collate utf8mb4_unicode_ci"
        drop = f"drop database if exists `{name}`"
    else:
        create = f'create database "{name}"'
        drop = f'drop database if exists "{name}" with (force)'
    with admin.connect() as connection:
        connection.exec_driver_sql(create)
    url = server_url(backend).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        apply_original_schema(engine, engine.dialect.name, head=head)
        yield OriginalDatabase(backend, engine.dialect.name, url, engine, head, name)
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(drop)
        admin.dispose()


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def original_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OriginalDatabase]:
    """A fresh database with the original app's schema at c696ca1, once per backend."""
    yield from _fresh_database(request.param, tmp_path, head=False)


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def original_db_head(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OriginalDatabase]:
    """A fresh database with the c696ca1 schema plus HEAD's additions, once per backend."""
    yield from _fresh_database(request.param, tmp_path, head=True)
