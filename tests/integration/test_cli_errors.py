"""Mistakes in configuration and environment, each run through the real `usage-sync` command:
one or two lines on stderr, the documented exit code, no traceback unless asked for."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from original_schema import OriginalDatabase
from redis_support import background, claimed_redis_db, script, sqlite_app_db, usage_sync, wait_for
from sqlalchemy import URL, make_url

from usage_entrypoints.exit_codes import ExitCode


def assert_one_problem(
    done: subprocess.CompletedProcess[str], code: ExitCode, *expected: str
) -> None:
    """Exit `code`, at most two lines on stderr, the first naming the problem, no traceback."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stderr
    assert 1 <= len(lines) <= 2, done.stderr
    assert lines[0].startswith("❌"), done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SERVERS = pytest.mark.parametrize("original_db", ["mariadb", "postgresql"], indirect=True)


def server_of(db: OriginalDatabase) -> URL:
    """The URL of the server holding `db`."""
    return make_url(db.url)


def listening(port: int) -> bool:
    """True once something accepts connections on the loopback `port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def app_db(tmp_path: Path) -> str:
    """The URL of an SQLite file holding the app's (empty) tables."""
    with sqlite_app_db(tmp_path / "app.sqlite") as db:
        return db.url


class TestDatabase:
    """The database URL, driver, credentials, server, database and tables."""

    def test_not_a_url(self, tmp_path: Path) -> None:
        """A database URL that is not one: configuration error, exit 3."""
        env = {"USAGE_SYNC_DATABASE_URL": "app-database"}
        done = usage_sync("sync", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.CONFIGURATION, "not a valid database URL")

    def test_unsupported_database(self, tmp_path: Path) -> None:
        """A database usage-sync does not speak: configuration error naming the choices."""
        env = {"USAGE_SYNC_DATABASE_URL": "oracle://u:p@db/app"}
        done = usage_sync("sync", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.CONFIGURATION, "SQLite, MariaDB/MySQL or PostgreSQL")
        assert ":p@" not in done.stderr

    def test_driver_not_installed(self, tmp_path: Path) -> None:
        """A driver that is not installed: says which extra to install."""
        env = {"USAGE_SYNC_DATABASE_URL": "postgresql+pg8000://u@127.0.0.1/app"}
        done = usage_sync("sync", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.CONFIGURATION, "driver is not installed", "pip install")

    @SERVERS
    def test_wrong_password(self, original_db: OriginalDatabase, tmp_path: Path) -> None:
        """A password the server refuses: access denied, exit 5, the password not shown."""
        url = server_of(original_db).set(username="usync_nobody", password="s3cret-pw")
        env = {"USAGE_SYNC_DATABASE_URL": url.render_as_string(hide_password=False)}
        done = usage_sync("sync", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.DATABASE_ACCESS_DENIED, "access denied", "password")
        assert "s3cret-pw" not in done.stderr

    @SERVERS
    def test_server_down(self, original_db: OriginalDatabase, tmp_path: Path) -> None:
        """No server on the port: the run could not happen, exit 2, with what to check."""
        url = server_of(original_db).set(port=closed_port(), database="app")
        env = {"USAGE_SYNC_DATABASE_URL": url.render_as_string(hide_password=False)}
        done = usage_sync("sync", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.NOT_RUN, "cannot connect to the server", "running")

    @SERVERS
    def test_missing_database(self, original_db: OriginalDatabase, tmp_path: Path) -> None:
        """A database the server does not have is named as such, exit 6."""
        url = server_of(original_db).set(database="usync_no_such_database")
        env = {"USAGE_SYNC_DATABASE_URL": url.render_as_string(hide_password=False)}
        done = usage_sync("enforce", "--dry-run", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.DATABASE_MISSING, "the database does not exist")

    def test_missing_tables(self, tmp_path: Path) -> None:
        """An SQLite file without the app's tables: exit 7 and where to point the URL."""
        (tmp_path / "other.sqlite").touch()
        env = {"USAGE_SYNC_DATABASE_URL": "sqlite:///other.sqlite"}
        done = usage_sync("sync", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.MISSING_TABLES, "no usage tables", "db init")

    @pytest.mark.parametrize("command", [("sync",), ("sync-one", "--config", "1"), ("tick",)])
    def test_empty_directory(self, command: tuple[str, ...], tmp_path: Path) -> None:
        """No database URL and no database here: says so, exit 6, and leaves no file behind."""
        done = usage_sync(*command, env={}, cwd=tmp_path)
        assert_one_problem(done, ExitCode.DATABASE_MISSING, "usage-sync.sqlite", "does not exist")
        assert list(tmp_path.iterdir()) == []

    def test_run_on_a_mistyped_path(self, app_db: str, tmp_path: Path) -> None:
        """`run` on an SQLite path that does not exist stops at once instead of ticking."""
        env = {"USAGE_SYNC_DATABASE_URL": app_db.replace("app.sqlite", "apq.sqlite")}
        done = usage_sync("run", env=env, cwd=tmp_path, timeout=30)
        assert_one_problem(done, ExitCode.DATABASE_MISSING, "apq.sqlite")
        assert not (tmp_path / "apq.sqlite").exists()

    def test_run_without_tables(self, tmp_path: Path) -> None:
        """`run` on a database without the app's tables stops at once, naming them."""
        (tmp_path / "empty.sqlite").touch()
        env = {"USAGE_SYNC_DATABASE_URL": "sqlite:///empty.sqlite"}
        done = usage_sync("run", env=env, cwd=tmp_path, timeout=30)
        assert_one_problem(done, ExitCode.MISSING_TABLES, "reseller_configs")


class TestEnvironment:
    """Redis, the app key, the time zone and the log file."""

    def test_redis_url_not_a_url(self, app_db: str, tmp_path: Path) -> None:
        """A Redis URL without a scheme: configuration error with the expected form."""
        env = {"USAGE_SYNC_DATABASE_URL": app_db, "USAGE_SYNC_REDIS_URL": "localhost:6379"}
        done = usage_sync("tick", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.CONFIGURATION, "USAGE_SYNC_REDIS_URL", "redis://")

    @pytest.mark.parametrize("command", ["tick", "schedule", "sync", "worker", "scheduler"])
    def test_redis_unreachable(self, command: str, app_db: str, tmp_path: Path) -> None:
        """Nothing on the Redis port: every command that uses Redis says so at start, exit 8."""
        redis_url = f"redis://:redis-s3cret@127.0.0.1:{closed_port()}/0"
        env = {"USAGE_SYNC_DATABASE_URL": app_db, "USAGE_SYNC_REDIS_URL": redis_url}
        done = usage_sync(command, env=env, cwd=tmp_path, timeout=30)
        assert_one_problem(done, ExitCode.REDIS_UNAVAILABLE, "Redis cannot be reached")
        assert "redis-s3cret" not in done.stderr

    def test_redis_refuses_the_password(self, app_db: str, tmp_path: Path) -> None:
        """A Redis of the test's own with a password: a wrong one is refused at start, exit 8."""
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        port = closed_port()
        server = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                "right-pw",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: listening(port), timeout=10, what="redis-server")
            redis_url = f"redis://:wrong-pw@127.0.0.1:{port}/0"
            env = {"USAGE_SYNC_DATABASE_URL": app_db, "USAGE_SYNC_REDIS_URL": redis_url}
            done = usage_sync("tick", env=env, cwd=tmp_path)
        finally:
            server.terminate()
            server.wait(10)
        assert_one_problem(done, ExitCode.REDIS_UNAVAILABLE, "Redis refuses", "password")
        assert "wrong-pw" not in done.stderr

    @pytest.mark.parametrize("key", ["base64:not-base64!", "base64:" + "QUJD" * 4, "short"])
    @pytest.mark.parametrize("command", ["schedule", "sync", "tick"])
    def test_malformed_app_key(self, key: str, command: str, app_db: str, tmp_path: Path) -> None:
        """An app key that cannot be a key is refused at start by every command, exit 4."""
        env = {"USAGE_SYNC_DATABASE_URL": app_db, "USAGE_SYNC_APP_KEY": key}
        done = usage_sync(command, env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.APP_KEY, "USAGE_SYNC_APP_KEY", ".env")
        assert key not in done.stderr

    def test_unknown_time_zone(self, app_db: str, tmp_path: Path) -> None:
        """A time zone that is not an IANA name: configuration error with an example."""
        env = {"USAGE_SYNC_DATABASE_URL": app_db, "USAGE_SYNC_TIMEZONE": "Tehran"}
        done = usage_sync("schedule", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.CONFIGURATION, "USAGE_SYNC_TIMEZONE", "Europe/Berlin")

    def test_log_file_under_a_file(self, app_db: str, tmp_path: Path) -> None:
        """A log file whose directory is a file: configuration error naming the variable."""
        (tmp_path / "logs").write_text("", encoding="utf-8")
        env = {"USAGE_SYNC_DATABASE_URL": app_db, "USAGE_SYNC_LOG_FILE": str(tmp_path / "logs/x")}
        done = usage_sync("sync", env=env, cwd=tmp_path)
        assert_one_problem(done, ExitCode.CONFIGURATION, "USAGE_SYNC_LOG_FILE", "directory")


class TestDebug:
    """`--debug` or USAGE_SYNC_LOG_LEVEL=DEBUG add the traceback to the same lines."""

    @pytest.mark.parametrize(
        ("flags", "level"), [(("--debug",), "INFO"), ((), "DEBUG")], ids=["flag", "level"]
    )
    def test_traceback_on_request(self, flags: tuple[str, ...], level: str, tmp_path: Path) -> None:
        """With debugging on, the error still ends in its line and code, after the traceback."""
        env = {"USAGE_SYNC_LOG_LEVEL": level}
        done = usage_sync(*flags, "sync", env=env, cwd=tmp_path)
        assert done.returncode == ExitCode.DATABASE_MISSING, done.stderr
        assert "Traceback" in done.stderr
        assert "DatabaseMissingError" in done.stderr
        assert done.stderr.strip().splitlines()[-2].startswith("❌")


class TestPolish:
    """Negative values, unknown keys, plurals, the version, the environment in `--help`."""

    def test_negative_value(self, app_db: str, tmp_path: Path) -> None:
        """`settings set KEY -4` stores -4 (not `No such option`) and says what applies."""
        env = {"USAGE_SYNC_DATABASE_URL": app_db}
        key = "reseller.usage_sync_interval_minutes"
        done = usage_sync("settings", "set", key, "-4", env=env, cwd=tmp_path)
        assert done.returncode == ExitCode.OK, done.stderr
        assert "note: clamped to 1 minute (allowed: 1 to 5)" in done.stderr
        shown = usage_sync("settings", "get", key, env=env, cwd=tmp_path)
        assert shown.stdout.splitlines()[0] == "-4"
        schedule = usage_sync("schedule", env=env, cwd=tmp_path)
        assert "-> every 1 minute\n" in schedule.stdout

    def test_unknown_key_is_a_warning(self, app_db: str, tmp_path: Path) -> None:
        """A mistyped key is stored, with a warning naming the key usage-sync reads."""
        env = {"USAGE_SYNC_DATABASE_URL": app_db}
        typo = "reseller.usage_sync_interval_minute"
        done = usage_sync("settings", "set", typo, "2", env=env, cwd=tmp_path)
        assert done.returncode == ExitCode.OK, done.stderr
        assert done.stderr.strip() == (
            f"warning: usage-sync does not read {typo}; "
            "did you mean reseller.usage_sync_interval_minutes?"
        )
        assert usage_sync("settings", "get", typo, env=env, cwd=tmp_path).stdout == "2\n"
        known = usage_sync(
            "settings", "set", "usage_sync.enforcement", "off", env=env, cwd=tmp_path
        )
        assert known.stderr == ""

    def test_version(self, tmp_path: Path) -> None:
        """`--version` prints the installed version and needs no database."""
        done = usage_sync("--version", env={}, cwd=tmp_path)
        assert done.returncode == ExitCode.OK, done.stderr
        assert re.fullmatch(r"usage-sync \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout
        assert list(tmp_path.iterdir()) == []

    def test_help_lists_every_variable(self, tmp_path: Path) -> None:
        """`--help` names each USAGE_SYNC_* variable the settings read."""
        source = Path(__file__).parents[2] / "src/usage_entrypoints/settings.py"
        read = set(re.findall(r'get\("([A-Z_]+)"\)', source.read_text(encoding="utf-8")))
        assert len(read) >= 10, read
        shown = usage_sync("--help", env={}, cwd=tmp_path).stdout
        missing = sorted(name for name in read if f"USAGE_SYNC_{name} " not in shown)
        assert missing == [], shown

    def test_scheduler_prints_no_future_warning(self, app_db: str, tmp_path: Path) -> None:
        """`usage-sync scheduler` starts without rq-scheduler's FutureWarning."""
        with claimed_redis_db() as redis_db:
            env = {"USAGE_SYNC_DATABASE_URL": app_db, "USAGE_SYNC_REDIS_URL": redis_db.url}
            output = tmp_path / "scheduler.out"
            command = [script("usage-sync"), "scheduler", "--interval", "1"]
            with background(command, env=env, output=output) as scheduler:
                wait_for(
                    lambda: "Registering birth" in scheduler.text(),
                    timeout=30,
                    what="the scheduler",
                    alive=scheduler,
                )
                time.sleep(2)  # a few rounds of its loop, each computing the cron entry
            text = output.read_text(encoding="utf-8")
        assert "Registering birth" in text
        assert "Warning" not in text, text
