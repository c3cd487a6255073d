"""Helpers for the tests on real Redis: a claimed database, an app database, processes.

Each test gets one of the Redis databases 9..15 of the server at
USAGE_SYNC_TEST_REDIS_URL (default redis://127.0.0.1:6379). A database is claimed
with `SET NX` on a claim key with a time-to-live, so that two test runs on one server
never share one; it is emptied when claimed and flushed when given back. A server that
does not answer skips the test, or fails it when CI=true.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
from original_rows import TEST_APP_KEY, insert_config, insert_panel, insert_reseller, insert_setting
from original_schema import OriginalDatabase, apply_original_schema
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import create_engine, event

from usage_core.dispatch import JOB_NAME
from usage_core.interval import INTERVAL_SETTING_KEY
from usage_sandbox.emulator import EmulatedUser, PanelEmulator

REDIS_URL_VARIABLE = "USAGE_SYNC_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
TEST_DB_NUMBERS = range(9, 16)
CLAIM_KEY = "usage-sync-test:claim"
CLAIM_TTL_SECONDS = 900
QUEUE = "usage-sync"

API_KEY = "eyl-key-SECRET-42"
PANEL_USER = "test_user_123"
CONFIG_ID = 123
RESELLER_ID = 45
USAGE_BEFORE = 524_288_000
USAGE_ON_PANEL = 1_073_741_824

T = TypeVar("T")


def running_under_ci() -> bool:
    """Whether the environment says this is a CI run (CI=true)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def redis_server_url() -> str:
    """The Redis server to test against, without a database number."""
    return (os.environ.get(REDIS_URL_VARIABLE) or DEFAULT_REDIS_URL).rstrip("/")


def lock_key(queue: str = QUEUE) -> str:
    """The unique lock's key, as the container names it."""
    return f"usage-sync:{queue}:unique:{JOB_NAME}"


def history_key(queue: str = QUEUE) -> str:
    """The last-run summary's key, as the container names it."""
    return f"usage-sync:{queue}:last-run"


@dataclass(frozen=True)
class RedisDb:
    """One claimed, empty Redis database."""

    number: int
    url: str
    client: Redis = field(repr=False)


_unreachable: list[str | None] = []


def require_redis() -> None:
    """Skip the test (fail it under CI=true) when the Redis server does not answer."""
    if not _unreachable:
        message = None
        client = Redis.from_url(redis_server_url(), socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        except (RedisError, OSError) as exc:
            message = (
                f"Redis is not reachable at {redis_server_url()} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                "Start it with `redis-server --bind 127.0.0.1 --save '' --daemonize yes`, "
                f"or set {REDIS_URL_VARIABLE} to the URL of a running one."
            )
        finally:
            client.close()
        _unreachable.append(message)
    message = _unreachable[0]
    if message is not None:
        if running_under_ci():
            pytest.fail(f"CI=true, so not skipping: {message}", pytrace=False)
        pytest.skip(message)


@contextmanager
def claimed_redis_db() -> Iterator[RedisDb]:
    """A Redis database from 9..15 that no other test holds, emptied; flushed afterwards."""
    require_redis()
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for number in TEST_DB_NUMBERS:
        url = f"{redis_server_url()}/{number}"
        client = Redis.from_url(url, socket_timeout=10)
        if not client.set(CLAIM_KEY, token, nx=True, ex=CLAIM_TTL_SECONDS):
            client.close()
            continue
        # Ours now: empty it, keeping the claim, in one transaction.
        with client.pipeline(transaction=True) as pipe:
            pipe.flushdb().set(CLAIM_KEY, token, ex=CLAIM_TTL_SECONDS).execute()
        try:
            yield RedisDb(number, url, client)
        finally:
            client.flushdb()
            client.close()
        return
    pytest.fail(f"every Redis test database {list(TEST_DB_NUMBERS)} is claimed by another run")


@contextmanager
def sqlite_app_db(path: Path) -> Iterator[OriginalDatabase]:
    """A new SQLite file with the original app's schema, foreign keys on."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)

    def foreign_keys(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("pragma foreign_keys = 1")
        cursor.close()

    event.listen(engine, "connect", foreign_keys)
    try:
        apply_original_schema(engine, "sqlite")
        yield OriginalDatabase("sqlite", "sqlite", url, engine, False, str(path))
    finally:
        engine.dispose()


@contextmanager
def eylandoo_panel() -> Iterator[PanelEmulator]:
    """An Eylandoo panel whose user has used 1024 MB."""
    half = USAGE_ON_PANEL // 2
    users = [EmulatedUser(PANEL_USER, upload=half, download=half)]
    with PanelEmulator("eylandoo", users=users, api_key=API_KEY) as panel:
        yield panel


def seed(db: OriginalDatabase, panel: PanelEmulator, *, interval: str | None = "1") -> None:
    """One active traffic reseller with one config on `panel`, and the interval setting."""
    insert_panel(
        db.engine,
        id=10,
        name="Eylandoo Production",
        panel_type="eylandoo",
        url=panel.url,
        username=None,
        password=None,
        api_token=API_KEY,
    )
    insert_reseller(db.engine, id=RESELLER_ID, traffic_total_bytes=50 * 1024**3)
    insert_config(
        db.engine,
        id=CONFIG_ID,
        reseller_id=RESELLER_ID,
        external_username=PANEL_USER,
        panel_type="eylandoo",
        panel_id=10,
        usage_bytes=USAGE_BEFORE,
        traffic_limit_bytes=10 * 1024**3,
    )
    if interval is not None:
        insert_setting(db.engine, INTERVAL_SETTING_KEY, interval)


def app_env(redis_url: str, database_url: str, workdir: Path) -> dict[str, str]:
    """The `USAGE_SYNC_*` variables of a process using this Redis and database."""
    return {
        "USAGE_SYNC_REDIS_URL": redis_url,
        "USAGE_SYNC_DATABASE_URL": database_url,
        "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
        "USAGE_SYNC_STATE_DIR": str(workdir / "state"),
        "USAGE_SYNC_LOG_FILE": str(workdir / "usage-sync.log"),
        "USAGE_SYNC_TIMEZONE": "UTC",
        "USAGE_SYNC_QUEUE": QUEUE,
    }


def subprocess_env(env: Mapping[str, str]) -> dict[str, str]:
    """The test's environment without its own `USAGE_SYNC_*` variables, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("USAGE_SYNC_")}
    return {**base, "TZ": "UTC", **env}


def script(name: str) -> str:
    """A console script of this virtualenv (`usage-sync`, `rq`)."""
    return str(Path(sys.executable).with_name(name))


def usage_sync(
    *args: str, env: Mapping[str, str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `usage-sync ARGS` to completion (in `cwd`, when given)."""
    return subprocess.run(
        [script("usage-sync"), *args],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


@dataclass
class Background:
    """A long-running process whose output goes to a file."""

    process: subprocess.Popen[bytes]
    output: Path
    _handle: IO[bytes] = field(repr=False)

    def text(self) -> str:
        """Everything the process printed so far."""
        return self.output.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, wait, SIGKILL if it lingers; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._handle.close()
        return self.process.returncode


@contextmanager
def background(args: list[str], *, env: Mapping[str, str], output: Path) -> Iterator[Background]:
    """Start `args` in the background; stopped (SIGTERM, then SIGKILL) on exit."""
    handle = output.open("wb")
    try:
        process = subprocess.Popen(
            args, env=subprocess_env(env), stdout=handle, stderr=subprocess.STDOUT
        )
    except BaseException:
        handle.close()
        raise
    proc = Background(process, output, handle)
    try:
        yield proc
    finally:
        proc.stop()


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    alive: Background | None = None,
    interval: float = 0.2,
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if alive is not None and alive.process.poll() is not None:
            pytest.fail(f"{what}: the process exited ({alive.process.returncode}):\n{alive.text()}")
        if time.monotonic() >= deadline:
            extra = f"\noutput so far:\n{alive.text()}" if alive is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


# Loggers that `configure_logging` (root, httpx, httpcore) and RQ's own set-up change.
_TOUCHED_LOGGERS = ("", "httpx", "httpcore", "rq.worker", "rq.job", "rq.cron")


@contextmanager
def restored_logging() -> Iterator[None]:
    """Undo what `configure_logging` and an in-process RQ worker do to the loggers."""
    loggers = [logging.getLogger(name or None) for name in _TOUCHED_LOGGERS]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, handlers, level, propagate in saved:
            for handler in [h for h in lg.handlers if h not in handlers]:
                lg.removeHandler(handler)
                with suppress(Exception):
                    handler.close()
            lg.setLevel(level)
            lg.propagate = propagate


@contextmanager
def restored_signal_handlers() -> Iterator[None]:
    """Put back the SIGINT, SIGTERM and SIGALRM handlers an in-process worker replaces."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
