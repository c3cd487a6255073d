"""A Redis of the suite's own, restarted under a running worker and scheduler."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fault_support import FaultWorld, fault_world
from redis import Redis
from redis_support import background, running_under_ci, script, sqlite_app_db, usage_sync, wait_for

from usage_core.interval import INTERVAL_SETTING_KEY

pytestmark = pytest.mark.timeout(300)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OwnRedis:
    """A redis-server on a free port that the test stops and starts at will (no persistence)."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self._process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url, socket_timeout=1)
        wait_for(lambda: _pings(client), timeout=10, what="redis-server to answer")
        client.close()

    def stop(self) -> None:
        """Kill the server: everything it held is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None


def _pings(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


@contextmanager
def own_redis(workdir: Path) -> Iterator[OwnRedis]:
    """A running redis-server of this test's own; stopped afterwards."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if running_under_ci():
            pytest.fail(f"CI=true, so not skipping: {message}")
        pytest.skip(message)
    server = OwnRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[FaultWorld]:
    """Four panels and an SQLite app database, synced every minute."""
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=10) as built,
    ):
        done = usage_sync("settings", "set", INTERVAL_SETTING_KEY, "1", env=built.env(), timeout=60)
        assert done.returncode == 0, done.stderr
        yield built


def env_of(world: FaultWorld, redis: OwnRedis, tmp_path: Path) -> dict[str, str]:
    """The Redis deployment's variables."""
    return world.env(
        USAGE_SYNC_REDIS_URL=redis.url,
        USAGE_SYNC_STATE_DIR=str(tmp_path / "state"),
        USAGE_SYNC_LOG_FILE=str(tmp_path / "usage-sync.log"),
    )


def converged(world: FaultWorld) -> bool:
    """True once every ledger matches its panel."""
    try:
        world.assert_converged()
    except AssertionError:
        return False
    return True


def test_worker_lives_through_a_redis_restart(world: FaultWorld, tmp_path: Path) -> None:
    """The worker outlives Redis going away and coming back empty, then runs the next job."""
    with own_redis(tmp_path) as redis:
        env = env_of(world, redis, tmp_path)
        with background(
            [script("usage-sync"), "worker"], env=env, output=tmp_path / "worker.out"
        ) as worker:
            time.sleep(1.5)
            redis.stop()
            time.sleep(4)
            assert worker.process.poll() is None, worker.text()
            redis.start()
            done = usage_sync("tick", "--now", "2026-11-24T10:00:00+00:00", "--json", env=env)
            assert '"dispatched": true' in done.stdout, done.stdout + done.stderr
            wait_for(lambda: converged(world), timeout=60, what="the sync", alive=worker)
            assert "Traceback" not in worker.text()


def test_scheduler_recreates_its_entry_after_a_restart(world: FaultWorld, tmp_path: Path) -> None:
    """Redis restarted between ticks: the scheduler re-creates its entry; the next minute runs."""
    with own_redis(tmp_path) as redis:
        env = env_of(world, redis, tmp_path)
        with (
            background(
                [script("usage-sync"), "scheduler", "--interval", "1"],
                env=env,
                output=tmp_path / "scheduler.out",
            ) as scheduler,
            background(
                [script("usage-sync"), "worker"], env=env, output=tmp_path / "worker.out"
            ) as worker,
        ):
            wait_for(lambda: converged(world), timeout=90, what="the first run", alive=scheduler)
            redis.stop()
            time.sleep(3)
            redis.start()
            world.grow()
            wait_for(lambda: converged(world), timeout=90, what="the run after", alive=scheduler)
            assert scheduler.process.poll() is None, scheduler.text()
            assert worker.process.poll() is None, worker.text()
        log = (tmp_path / "usage-sync.log").read_text(encoding="utf-8")
        assert "re-created" in log
        assert "FutureWarning" not in scheduler.text()
