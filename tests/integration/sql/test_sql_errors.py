"""Database failures reach callers as the core's error types, with the driver's reason."""

import socket
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from usage_adapters.sql.configs import SqlConfigRepository
from usage_adapters.sql.engine import create_store_engine
from usage_adapters.sql.resellers import SqlResellerRepository
from usage_core.errors import DatabaseMissingError, DatabaseUnavailableError, MissingTablesError


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_resellers(url: str) -> None:
    """One read through the store, on a fresh engine for `url`."""
    engine = create_store_engine(url)
    try:
        SqlResellerRepository(engine).synced()
    finally:
        engine.dispose()


class TestTranslation:
    """Each kind of database failure has its own error type."""

    def test_missing_tables(self, original_db) -> None:
        """A database without the app's tables is `MissingTablesError`, on every backend."""
        with original_db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE resellers RENAME TO resellers_elsewhere"))
        with pytest.raises(MissingTablesError):
            read_resellers(original_db.url)

    def test_streamed_rows_fail_as_the_core_error(self, original_db) -> None:
        """Streamed rows raise the core's error as they are taken, not SQLAlchemy's."""
        with original_db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE reseller_configs RENAME TO configs_elsewhere"))
        engine = create_store_engine(original_db.url)
        try:
            rows = SqlConfigRepository(engine).synced_items()
            with pytest.raises(MissingTablesError):
                next(iter(rows))
        finally:
            engine.dispose()

    def test_missing_database(self, original_db, tmp_path: Path) -> None:
        """A database that does not exist is unavailable, not a database without tables."""
        if original_db.backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite'}"
            expected = "the SQLite file .* does not exist"
        else:
            url = make_url(original_db.url).set(database="usync_no_such_database")
            url = url.render_as_string(hide_password=False)
            expected = "the database does not exist"
        with pytest.raises(DatabaseMissingError, match=expected):
            read_resellers(url)

    @pytest.mark.parametrize("original_db", ["mariadb", "postgresql"], indirect=True)
    def test_refused_credentials(self, original_db) -> None:
        """Wrong credentials are unavailable, with the server's reason."""
        url = make_url(original_db.url).set(username="usync_nobody", password="wrong")
        with pytest.raises(DatabaseUnavailableError, match="access denied"):
            read_resellers(url.render_as_string(hide_password=False))

    @pytest.mark.parametrize("original_db", ["mariadb", "postgresql"], indirect=True)
    def test_nothing_listening(self, original_db) -> None:
        """A server that does not answer is unavailable."""
        url = make_url(original_db.url).set(host="127.0.0.1", port=_closed_port())
        with pytest.raises(DatabaseUnavailableError, match="connect"):
            read_resellers(url.render_as_string(hide_password=False))
