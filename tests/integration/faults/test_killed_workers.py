"""RQ work horses and workers killed with SIGKILL mid-job: no lost or doubled byte, no run
outside the unique lock, and the next run converges."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_support import FaultWorld, fault_world
from redis_support import (
    QUEUE,
    RedisDb,
    background,
    claimed_redis_db,
    lock_key,
    script,
    sqlite_app_db,
    usage_sync,
    wait_for,
)
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from usage_sandbox.emulator import Fault

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[FaultWorld]:
    """Four slow-listing panels and an SQLite app database."""
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=20) as built,
    ):
        yield built


@pytest.fixture
def redis_db() -> Iterator[RedisDb]:
    """A Redis database of this test's own."""
    with claimed_redis_db() as claimed:
        yield claimed


def children(pid: int) -> list[int]:
    """The process ids of `pid`'s children."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


def dispatch(env: dict[str, str], minute: int) -> None:
    """One tick at 10:`minute` (the default interval, 5 minutes)."""
    done = usage_sync("tick", "--now", f"2026-11-24T10:{minute:02d}:00+00:00", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert '"dispatched": true' in done.stdout, done.stdout


def slow_down(world: FaultWorld, seconds: float) -> None:
    """Every panel's listing waits `seconds` before it answers."""
    for panel in world.panels.values():
        panel.set_list_fault(1, Fault.slow(seconds))


def speed_up(world: FaultWorld) -> None:
    """Every panel answers at once again."""
    for panel in world.panels.values():
        panel.clear_faults()


def env_of(world: FaultWorld, redis_db: RedisDb, tmp_path: Path) -> dict[str, str]:
    """A Redis deployment's variables on this world."""
    return world.env(
        USAGE_SYNC_REDIS_URL=redis_db.url,
        USAGE_SYNC_QUEUE=QUEUE,
        USAGE_SYNC_STATE_DIR=str(tmp_path / "state"),
        USAGE_SYNC_LOG_FILE=str(tmp_path / "usage-sync.log"),
    )


def test_killed_work_horse_is_retried_under_its_lock(
    world: FaultWorld, redis_db: RedisDb, tmp_path: Path
) -> None:
    """A horse killed mid-sync fails that try; the retry, still under the lock, converges."""
    env = env_of(world, redis_db, tmp_path)
    slow_down(world, 2.0)
    dispatch(env, 0)
    token = redis_db.client.get(lock_key())
    with background(
        [script("usage-sync"), "worker"], env=env, output=tmp_path / "worker.out"
    ) as worker:
        horse = wait_for(
            lambda: children(worker.process.pid), timeout=30, what="a work horse", alive=worker
        )[0]
        time.sleep(0.5)
        os.kill(horse, signal.SIGKILL)
        speed_up(world)
        wait_for(
            lambda: redis_db.client.get(lock_key()) is None,
            timeout=60,
            what="the retry to finish and release the lock",
            alive=worker,
        )
        assert worker.process.poll() is None, worker.text()
    assert token is not None
    world.assert_converged()


def test_killed_worker_leaves_an_abandoned_job_that_never_runs_outside_the_lock(
    world: FaultWorld, redis_db: RedisDb, tmp_path: Path
) -> None:
    """A whole worker killed mid-sync: its job, brought back later, runs only under the lock."""
    env = env_of(world, redis_db, tmp_path)
    slow_down(world, 2.0)
    dispatch(env, 0)
    first = background([script("usage-sync"), "worker"], env=env, output=tmp_path / "w1.out")
    with first as worker:
        wait_for(lambda: children(worker.process.pid), timeout=30, what="a horse", alive=worker)
        for pid in [*children(worker.process.pid), worker.process.pid]:
            os.kill(pid, signal.SIGKILL)
        worker.process.wait(10)
    world.assert_never_over()
    queue = Queue(QUEUE, connection=redis_db.client)
    [abandoned] = StartedJobRegistry(queue=queue).get_job_ids()

    # Another run holds the lock now (the old one's TTL ran out and a tick took it), when
    # RQ's maintenance finds the job abandoned and brings it back for its retry.
    redis_db.client.set(lock_key(), "another-run", ex=300)
    StartedJobRegistry(queue=queue).cleanup(time.time() + 3600)
    assert abandoned in queue.job_ids
    speed_up(world)
    with background(
        [script("usage-sync"), "worker", "--burst"], env=env, output=tmp_path / "w2.out"
    ) as worker:
        worker.process.wait(60)
    job = Job.fetch(abandoned, connection=redis_db.client)
    assert job.return_value() == {"skipped": "the unique lock belongs to another run"}
    assert redis_db.client.get(lock_key()) == b"another-run"

    # Once that run is over, the next minute's run converges.
    redis_db.client.delete(lock_key())
    dispatch(env, 5)
    with background(
        [script("usage-sync"), "worker", "--burst"], env=env, output=tmp_path / "w3.out"
    ) as worker:
        worker.process.wait(60)
    world.assert_converged()
