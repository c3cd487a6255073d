"""Every `USAGE_SYNC_*` setting reaches the adapter where it acts, and acts there."""

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from original_rows import PANEL_PASSWORD, TEST_APP_KEY, insert_config, insert_panel, insert_reseller
from original_schema import apply_original_schema
from redis_support import RedisDb, claimed_redis_db, restored_logging
from sqlalchemy import Engine, create_engine

from usage_adapters.file_lock import FileLock
from usage_adapters.panels.clients import HttpxPanelClients
from usage_adapters.redis_lock import RedisLock
from usage_adapters.rq_queue import RqJobQueue
from usage_adapters.run_history import (
    FileDocument,
    FileRunHistory,
    RedisDocument,
    RedisRunHistory,
)
from usage_entrypoints import settings as settings_module
from usage_entrypoints.container import Container, build_container
from usage_entrypoints.logs import JsonFormatter
from usage_sandbox.emulator import EmulatedUser, PanelEmulator

WIRED = {
    "DATABASE_URL",
    "TIMEZONE",
    "APP_KEY",
    "LOG_FILE",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "HTTP_TIMEOUT",
    "REDIS_URL",
    "QUEUE",
    "STATE_DIR",
    "FANOUT",
    "PANEL_BUDGET",
    "PANEL_CONCURRENCY",
    # Served and acted on in test_metrics_endpoint.py and test_health.py (subprocesses).
    "METRICS_PORT",
    "METRICS_ADDR",
    "HEALTH_PANEL_FAILURES",
}


@pytest.fixture
def app_db(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """An SQLite file with the original app's tables."""
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    engine = create_engine(url)
    apply_original_schema(engine, "sqlite", head=True)
    try:
        yield url, engine
    finally:
        engine.dispose()


@pytest.fixture
def container_for(tmp_path: Path) -> Iterator:
    """Builds containers from environments, with logging restored and resources shut."""
    built: list[Container] = []

    def build(env: dict[str, str]) -> Container:
        container = build_container(env)
        built.append(container)
        return container

    with restored_logging():
        yield build
        for container in built:
            container.shutdown_resources()


def test_every_documented_variable_is_covered_here() -> None:
    """The settings module documents exactly the variables this module checks."""
    documented = set(
        re.findall(r"USAGE_SYNC_([A-Z_]+)", Path(settings_module.__file__).read_text())
    )
    assert documented == WIRED


def test_redis_mode_values_arrive(app_db, container_for, tmp_path: Path) -> None:
    """Each variable of a Redis deployment is found in the object that uses it."""
    # Commands check Redis when they start, so the URL names a live server.
    with claimed_redis_db() as redis_db:
        _redis_mode_values_arrive(app_db, container_for, tmp_path, redis_db)


def _redis_mode_values_arrive(app_db, container_for, tmp_path: Path, redis_db: RedisDb) -> None:
    url, engine = app_db
    log_file = tmp_path / "logs" / "usage-sync.log"
    env = {
        "USAGE_SYNC_DATABASE_URL": url,
        "USAGE_SYNC_TIMEZONE": "Asia/Tehran",
        "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
        "USAGE_SYNC_LOG_FILE": str(log_file),
        "USAGE_SYNC_LOG_FORMAT": "json",
        "USAGE_SYNC_LOG_LEVEL": "WARNING",
        "USAGE_SYNC_HTTP_TIMEOUT": "7.5",
        "USAGE_SYNC_REDIS_URL": redis_db.url,
        "USAGE_SYNC_QUEUE": "q-wired",
        "USAGE_SYNC_FANOUT": "panel",
        "USAGE_SYNC_PANEL_BUDGET": "33",
        "USAGE_SYNC_PANEL_CONCURRENCY": "3",
    }
    panel_id = insert_panel(engine)  # its password is encrypted with TEST_APP_KEY
    container = container_for(env)

    assert container.engine().url.render_as_string(hide_password=False) == url
    assert container.clock().now().tzinfo == ZoneInfo("Asia/Tehran")
    assert container.tick().tz == ZoneInfo("Asia/Tehran")
    panel = container.panels().get(panel_id)
    assert panel is not None
    assert panel.password is not None
    assert panel.password.reveal() == PANEL_PASSWORD

    [handler] = [h for h in logging.getLogger().handlers if h.get_name() == "usage-sync"]
    assert isinstance(handler, logging.FileHandler)
    assert Path(handler.baseFilename) == log_file
    assert isinstance(handler.formatter, JsonFormatter)
    assert logging.getLogger().level == logging.WARNING

    clients = container.panel_clients()
    assert isinstance(clients, HttpxPanelClients)
    assert clients.timeout.read == 7.5
    assert clients.sync_concurrency == 3
    assert clients.panel_budget_s == 33

    redis_kwargs = container.redis().connection_pool.connection_kwargs
    server = urlsplit(redis_db.url)
    assert (redis_kwargs["host"], redis_kwargs["port"], redis_kwargs["db"]) == (
        server.hostname,
        server.port or 6379,
        redis_db.number,
    )
    queue = container.queue()
    assert isinstance(queue, RqJobQueue)
    assert queue.queue.name == "q-wired"
    lock, history = container.lock(), container.run_history()
    assert isinstance(lock, RedisLock)
    assert lock.key.startswith("usage-sync:q-wired:")
    assert isinstance(history, RedisRunHistory)
    assert history.key.startswith("usage-sync:q-wired:")
    stats = container.run_stats()
    assert isinstance(stats, RedisDocument)
    assert stats.key == "usage-sync:q-wired:run-stats"
    assert container.sync_run().stats is stats
    assert container.settings().fanout is True


def test_embedded_state_dir_arrives(app_db, container_for, tmp_path: Path) -> None:
    """Without Redis, the lock file and the last-run file live in USAGE_SYNC_STATE_DIR."""
    url, _ = app_db
    state = tmp_path / "state"
    container = container_for({"USAGE_SYNC_DATABASE_URL": url, "USAGE_SYNC_STATE_DIR": str(state)})
    lock, history = container.lock(), container.run_history()
    assert isinstance(lock, FileLock)
    assert lock.path.parent == state
    assert isinstance(history, FileRunHistory)
    assert history.path.parent == state
    stats = container.run_stats()
    assert isinstance(stats, FileDocument)
    assert stats.path == state / "run-stats.json"


def _panel_with_users(engine: Engine, emulator: PanelEmulator, count: int) -> None:
    panel_id = insert_panel(
        engine, panel_type=emulator.kind, url=emulator.url, password="pw", app_key=None
    )
    reseller = insert_reseller(engine)
    for i in range(count):
        insert_config(
            engine,
            reseller_id=reseller,
            external_username=f"u{i:04d}",
            panel_type=emulator.kind,
            panel_id=panel_id,
        )


@pytest.mark.parametrize(("concurrency", "in_flight"), [("1", (1, 1)), ("8", (4, 8))])
def test_panel_concurrency_bounds_requests_in_flight(
    app_db, container_for, concurrency: str, in_flight: tuple[int, int]
) -> None:
    """USAGE_SYNC_PANEL_CONCURRENCY is how many requests one panel sees at once."""
    url, engine = app_db
    users = [EmulatedUser(f"u{i:04d}", download=i) for i in range(1000)]
    with PanelEmulator(
        "marzneshin", users=users, password="pw", latency_s=0.05
    ) as emulator:  # ten pages of 100
        _panel_with_users(engine, emulator, 1000)
        env = {"USAGE_SYNC_DATABASE_URL": url, "USAGE_SYNC_PANEL_CONCURRENCY": concurrency}
        summary = container_for(env).sync_all()()
        low, high = in_flight
        assert low <= emulator.stats().max_in_flight <= high
    assert summary.total("updated") + summary.total("unchanged") == 1000


def test_panel_budget_bounds_a_slow_panel(app_db, container_for) -> None:
    """USAGE_SYNC_PANEL_BUDGET ends a panel's part of the run, however slow the panel is."""
    url, engine = app_db
    with PanelEmulator("marzban", users={"u0000": 5}, password="pw", latency_s=4) as emulator:
        _panel_with_users(engine, emulator, 3)
        env = {
            "USAGE_SYNC_DATABASE_URL": url,
            "USAGE_SYNC_PANEL_BUDGET": "1",
            "USAGE_SYNC_HTTP_TIMEOUT": "30",
        }
        began = time.monotonic()
        summary = container_for(env).sync_all()()
        elapsed = time.monotonic() - began
    assert elapsed < 3, elapsed
    assert summary.total("failed") == 3
