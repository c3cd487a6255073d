"""The unique dispatch, the RQ job path and the schedulers, on a real Redis server.

Every test gets its own empty Redis database (see `redis_support`); an unreachable
server skips the tests, or fails them under CI=true. Jobs run in SimpleWorker in this
process, or in `usage-sync worker` subprocesses that fork a work horse per job; the
schedulers (rq-scheduler, `rq cron`) run as subprocesses across a real minute boundary.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from original_rows import fetch_row
from original_schema import OriginalDatabase
from redis import Redis
from redis_support import (
    CONFIG_ID,
    QUEUE,
    RESELLER_ID,
    USAGE_BEFORE,
    USAGE_ON_PANEL,
    Background,
    RedisDb,
    app_env,
    background,
    claimed_redis_db,
    eylandoo_panel,
    history_key,
    lock_key,
    restored_logging,
    restored_signal_handlers,
    script,
    seed,
    sqlite_app_db,
    usage_sync,
    wait_for,
)
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler, get_cron_job_ids
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from usage_adapters.redis_lock import RedisDispatchSlots, RedisLock
from usage_adapters.rq_queue import RqJobQueue
from usage_core.dispatch import (
    JOB_TIMEOUT_SECONDS,
    SLOT_TTL_SECONDS,
    UNIQUE_FOR_SECONDS,
    DispatchOutcome,
    dispatch_unique,
)
from usage_core.interval import INTERVAL_SETTING_KEY
from usage_entrypoints.container import Container, build_container
from usage_entrypoints.jobs import SYNC_JOB, TICK_JOB
from usage_entrypoints.rq_runtime import TICK_JOB_ID
from usage_sandbox.emulator import PanelEmulator

AT_10_00 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
AT_10_03 = datetime(2026, 11, 24, 10, 3, tzinfo=UTC)
AT_10_05 = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
THREADS = 20
SCHEDULED_JOBS_KEY = "rq:scheduler:scheduled_jobs"  # rq-scheduler's sorted set of entries
CRON_JOB_NAME = "usage-sync tick"  # the name `usage_entrypoints.rq_cron` registers
# How late after the minute boundary a scheduler may enqueue the tick: rq-scheduler
# polls every second (`--interval 1`), `rq cron` sleeps until the next due time.
ENQUEUE_SLACK = timedelta(seconds=10)

T = TypeVar("T")


# -- fixtures


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    """Loggers and signal handlers as they were, whatever a test's in-process worker did."""
    with restored_logging(), restored_signal_handlers():
        yield


@pytest.fixture
def redis_db() -> Iterator[RedisDb]:
    """An empty Redis database of its own."""
    with claimed_redis_db() as db:
        yield db


@pytest.fixture
def panel() -> Iterator[PanelEmulator]:
    """An Eylandoo panel on loopback whose user has used 1024 MB."""
    with eylandoo_panel() as emulator:
        yield emulator


@pytest.fixture
def app_db(tmp_path: Path, panel: PanelEmulator) -> Iterator[OriginalDatabase]:
    """A SQLite database with the original schema: one config on `panel`, interval 1."""
    with sqlite_app_db(tmp_path / "app.sqlite") as db:
        seed(db, panel, interval="1")
        yield db


@pytest.fixture
def env(redis_db: RedisDb, app_db: OriginalDatabase, tmp_path: Path) -> dict[str, str]:
    """The `USAGE_SYNC_*` variables of a process using this test's Redis and database."""
    return app_env(redis_db.url, app_db.url, tmp_path)


@pytest.fixture
def job_process(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """This process set up as a work horse: its env vars are the test's."""
    for name in [n for n in os.environ if n.startswith("USAGE_SYNC_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def container(env: dict[str, str], job_process: None) -> Iterator[Container]:
    """The dispatching side's container, in redis mode on this test's database."""
    built = build_container(env)
    assert built.mode() == "redis"
    try:
        yield built
    finally:
        built.shutdown_resources()


def queue_of(db: RedisDb) -> Queue:
    """The project's RQ queue in `db`."""
    return Queue(QUEUE, connection=db.client)


def lock_value(client: Redis) -> str | None:
    """The token holding the unique lock, or None when it is free."""
    raw = client.get(lock_key())
    return raw.decode() if isinstance(raw, bytes) else None


def in_threads(count: int, call: Callable[[int], T]) -> list[T]:
    """Run `call(i)` for i in range(count) in threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait(timeout=10)
        return call(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def assert_synced(db: RedisDb, app: OriginalDatabase) -> dict[str, object]:
    """The sync ran: a summary under the history key, the usage written, the lock free."""
    raw = db.client.get(history_key())
    assert raw is not None, "no run summary was recorded"
    summary = json.loads(raw)
    assert (summary["configs"], summary["updated"], summary["failed"]) == (1, 1, 0)
    assert fetch_row(app.engine, "reseller_configs", CONFIG_ID)["usage_bytes"] == USAGE_ON_PANEL
    assert fetch_row(app.engine, "resellers", RESELLER_ID)["traffic_used_bytes"] == USAGE_ON_PANEL
    assert lock_value(db.client) is None
    assert FailedJobRegistry(queue=queue_of(db)).get_job_ids() == []
    return summary


# -- 1. concurrent dispatches


class TestConcurrentDispatch:
    """Many dispatchers racing for one lock queue exactly one job."""

    def test_twenty_dispatchers_queue_one_job(self, redis_db: RedisDb) -> None:
        """20 threads calling dispatch_unique at once: one job queued, 19 skipped."""

        def dispatch(_: int) -> DispatchOutcome:
            lock = RedisLock(redis_db.client, lock_key())
            queue = RqJobQueue(redis_db.client, QUEUE, SYNC_JOB)
            return dispatch_unique(lock, queue)

        outcomes = in_threads(THREADS, dispatch)
        winners = [o for o in outcomes if o.dispatched]
        assert len(winners) == 1
        losers = [o for o in outcomes if not o.dispatched]
        assert len(losers) == THREADS - 1
        assert all(o.reason.startswith("skipped: the unique lock is held") for o in losers)
        assert all(o.job_id is None for o in losers)

        queue = queue_of(redis_db)
        assert queue.job_ids == [winners[0].job_id]
        job = queue.fetch_job(str(winners[0].job_id))
        assert job is not None
        assert job.func_name == SYNC_JOB
        assert list(job.args) == [lock_value(redis_db.client)]
        assert (job.timeout, job.retries_left) == (JOB_TIMEOUT_SECONDS, 1)
        assert UNIQUE_FOR_SECONDS - 10 < redis_db.client.ttl(lock_key()) <= UNIQUE_FOR_SECONDS

    def test_twenty_ticks_at_a_dispatch_minute_queue_one_job(
        self, container: Container, redis_db: RedisDb
    ) -> None:
        """20 SchedulerTicks from the container at 10:00 in threads: one dispatches."""
        ticks = [container.tick() for _ in range(THREADS)]
        results = in_threads(THREADS, lambda i: ticks[i](AT_10_00))
        assert all(r.decision.dispatch for r in results)
        dispatched = [r for r in results if r.dispatched]
        assert len(dispatched) == 1
        skipped = [r for r in results if not r.dispatched]
        assert len(skipped) == THREADS - 1
        # The minute is claimed once; a tick that won the claim still needs the lock.
        assert all("was dispatched already" in r.reason for r in skipped)
        assert queue_of(redis_db).job_ids == [dispatched[0].job_id]

    def test_an_off_minute_queues_nothing(self, container: Container, redis_db: RedisDb) -> None:
        """With interval 5, a tick at 10:03 neither takes the lock nor queues a job."""
        container.settings_repository().set(INTERVAL_SETTING_KEY, "5")
        result = container.tick()(AT_10_03)
        assert (result.decision.dispatch, result.dispatched) == (False, False)
        assert lock_value(redis_db.client) is None
        assert queue_of(redis_db).count == 0


# -- 2, 3. the lock itself


class TestRedisLock:
    """RedisLock: owner-only release and expiry."""

    def test_only_the_owner_releases(self, redis_db: RedisDb) -> None:
        """A wrong token cannot release the lock; the owner's token can, once."""
        lock = RedisLock(redis_db.client, lock_key())
        token = lock.acquire(UNIQUE_FOR_SECONDS)
        assert token is not None
        assert lock.acquire(UNIQUE_FOR_SECONDS) is None
        assert lock.release("not-the-token") is False
        assert lock.release(uuid.uuid4().hex) is False
        assert lock_value(redis_db.client) == token
        remaining = lock.remaining_seconds()
        assert remaining is not None
        assert UNIQUE_FOR_SECONDS - 10 < remaining <= UNIQUE_FOR_SECONDS
        assert lock.release(token) is True
        assert lock_value(redis_db.client) is None
        assert lock.remaining_seconds() is None
        assert lock.release(token) is False
        assert lock.acquire(UNIQUE_FOR_SECONDS) is not None

    def test_expiry_frees_the_lock(self, redis_db: RedisDb) -> None:
        """A 1 s lock is free after 1.1 s, and the expired owner cannot release its successor."""
        first = RedisLock(redis_db.client, lock_key())
        second = RedisLock(redis_db.client, lock_key())
        old = first.acquire(1)
        assert old is not None
        assert second.acquire(1) is None
        time.sleep(1.1)
        assert first.remaining_seconds() is None
        new = second.acquire(UNIQUE_FOR_SECONDS)
        assert new is not None
        assert first.release(old) is False
        assert lock_value(redis_db.client) == new

    def test_hold_extends_only_for_the_owner(self, redis_db: RedisDb) -> None:
        """`hold` renews the owner's TTL; another token changes neither owner nor TTL."""
        client = redis_db.client
        lock = RedisLock(client, lock_key())
        token = lock.acquire(10)
        assert token is not None
        assert lock.hold("someone-else", UNIQUE_FOR_SECONDS) is False
        assert lock_value(client) == token
        assert 0 < client.ttl(lock_key()) <= 10
        assert lock.hold(token, UNIQUE_FOR_SECONDS) is True
        assert lock_value(client) == token
        assert UNIQUE_FOR_SECONDS - 10 < client.ttl(lock_key()) <= UNIQUE_FOR_SECONDS

    def test_hold_retakes_a_free_lock(self, redis_db: RedisDb) -> None:
        """A token whose lock expired unclaimed takes it back for the TTL, with the same value."""
        client = redis_db.client
        lock = RedisLock(client, lock_key())
        assert lock.hold("returning-job", UNIQUE_FOR_SECONDS) is True
        assert lock_value(client) == "returning-job"
        assert UNIQUE_FOR_SECONDS - 10 < client.ttl(lock_key()) <= UNIQUE_FOR_SECONDS
        assert lock.acquire(UNIQUE_FOR_SECONDS) is None
        assert lock.release("returning-job") is True


class TestRedisDispatchSlots:
    """RedisDispatchSlots: one claim per minute key, kept for the slot TTL."""

    def test_same_minute_twice_is_refused_other_minutes_granted(self, redis_db: RedisDb) -> None:
        """The second claim of a minute fails, from any instance; another minute succeeds."""
        prefix = "usage-sync:test:slot:"
        slots = RedisDispatchSlots(redis_db.client, prefix)
        assert slots.claim("202611241000", SLOT_TTL_SECONDS) is True
        assert RedisDispatchSlots(redis_db.client, prefix).claim("202611241000", 60) is False
        assert slots.claim("202611241001", SLOT_TTL_SECONDS) is True
        assert sorted(redis_db.client.scan_iter(f"{prefix}*")) == [
            f"{prefix}202611241000".encode(),
            f"{prefix}202611241001".encode(),
        ]

    def test_claim_expires_with_its_ttl(self, redis_db: RedisDb) -> None:
        """A claimed minute's key carries the TTL, and the minute is free again once it lapses."""
        prefix = "usage-sync:test:slot:"
        slots = RedisDispatchSlots(redis_db.client, prefix)
        assert slots.claim("202611241000", 1) is True
        assert 0 < redis_db.client.pttl(f"{prefix}202611241000") <= 1000
        time.sleep(1.1)
        assert slots.claim("202611241000", 1) is True

    def test_tick_claims_its_decided_minute_for_an_hour(
        self, container: Container, redis_db: RedisDb
    ) -> None:
        """A dispatching tick at 10:00:40 claims the deployment's key of minute 10:00 for 3600 s."""
        assert container.tick()(AT_10_00 + timedelta(seconds=40)).dispatched
        key = f"usage-sync:{QUEUE}:slot:202611241000"
        assert SLOT_TTL_SECONDS - 10 < redis_db.client.ttl(key) <= SLOT_TTL_SECONDS
        assert [k.decode() for k in redis_db.client.scan_iter("usage-sync:*:slot:*")] == [key]


# -- 4, 5. the real job path in a SimpleWorker


class TestSimpleWorker:
    """The tick dispatches through RqJobQueue; SimpleWorker runs `jobs.sync_job`."""

    def test_sync_runs_and_releases_the_lock(
        self, container: Container, redis_db: RedisDb, app_db: OriginalDatabase
    ) -> None:
        """A dispatched sync runs in SimpleWorker: summary kept, usage written, lock released."""
        result = container.tick()(AT_10_00)
        assert result.dispatched, result.reason
        token = lock_value(redis_db.client)
        assert token is not None

        worked = SimpleWorker([queue_of(redis_db)], connection=redis_db.client).work(burst=True)

        assert worked
        job = Job.fetch(str(result.job_id), connection=redis_db.client)
        assert job.get_status() == JobStatus.FINISHED
        summary = assert_synced(redis_db, app_db)
        assert job.return_value() == summary
        # Released, so the next dispatch minute queues the next sync.
        assert container.tick()(AT_10_05).dispatched

    def test_failed_first_try_keeps_the_lock_last_failure_frees_it(
        self,
        container: Container,
        redis_db: RedisDb,
        app_db: OriginalDatabase,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A failing sync keeps the lock for its retry and releases it on the final failure."""
        result = container.tick()(AT_10_00)
        assert result.dispatched, result.reason
        token = lock_value(redis_db.client)
        assert token is not None
        job_id = str(result.job_id)
        assert list(Job.fetch(job_id, connection=redis_db.client).args) == [token]
        # The work horse reads a database without tables, so every try fails.
        (tmp_path / "empty.sqlite").touch()
        monkeypatch.setenv("USAGE_SYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite'}")
        queue = queue_of(redis_db)

        SimpleWorker([queue], connection=redis_db.client).work(burst=True, max_jobs=1)

        job = Job.fetch(job_id, connection=redis_db.client)
        assert job.get_status() == JobStatus.QUEUED
        assert job.retries_left == 0
        assert queue.job_ids == [job_id]
        assert lock_value(redis_db.client) == token
        assert FailedJobRegistry(queue=queue).get_job_ids() == []

        SimpleWorker([queue], connection=redis_db.client).work(burst=True)

        job = Job.fetch(job_id, connection=redis_db.client)
        assert job.get_status() == JobStatus.FAILED
        assert FailedJobRegistry(queue=queue).get_job_ids() == [job_id]
        latest = job.latest_result()
        assert latest is not None
        assert "no such table" in str(latest.exc_string) or "NoSuchTableError" in str(
            latest.exc_string
        )
        assert lock_value(redis_db.client) is None
        assert queue.count == 0
        assert redis_db.client.get(history_key()) is None
        assert fetch_row(app_db.engine, "reseller_configs", CONFIG_ID)["usage_bytes"] == (
            USAGE_BEFORE
        )


# -- 6, 9. the command line against real Redis


class TestCommands:
    """`usage-sync tick`, `schedule` and `worker --burst` as subprocesses."""

    def test_tick_twice_then_schedule(
        self, redis_db: RedisDb, env: dict[str, str], app_db: OriginalDatabase
    ) -> None:
        """One tick dispatches, the next is skipped by the lock, and `schedule` shows it held."""
        now = ("--now", "2026-11-24T10:00:00+00:00", "--json")
        first = usage_sync("tick", *now, env=env)
        assert first.returncode == 0, first.stderr
        document = json.loads(first.stdout)
        assert (document["dispatch"], document["dispatched"]) == (True, True)

        later = ("--now", "2026-11-24T10:05:00+00:00", "--json")
        second = usage_sync("tick", *later, env=env)
        assert second.returncode == 0, second.stderr
        document = json.loads(second.stdout)
        assert (document["dispatch"], document["dispatched"]) == (True, False)
        assert "lock" in document["reason"]
        assert queue_of(redis_db).count == 1

        shown = usage_sync("schedule", "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        document = json.loads(shown.stdout)
        assert document["mode"] == "redis"
        assert document["lock_held"] is True
        assert 0 < document["lock_remaining_seconds"] <= UNIQUE_FOR_SECONDS
        assert document["last_run"] is None
        assert fetch_row(app_db.engine, "reseller_configs", CONFIG_ID)["usage_bytes"] == (
            USAGE_BEFORE
        )

    def test_forked_worker_runs_the_dispatched_sync(
        self, redis_db: RedisDb, env: dict[str, str], app_db: OriginalDatabase
    ) -> None:
        """`usage-sync worker --burst` forks a horse that runs the sync and frees the lock."""
        tick = usage_sync("tick", "--now", "2026-11-24T10:00:00+00:00", "--json", env=env)
        assert json.loads(tick.stdout)["dispatched"] is True, tick.stderr
        [job_id] = queue_of(redis_db).job_ids

        worker = usage_sync("worker", "--burst", env=env, timeout=120)

        assert worker.returncode == 0, worker.stderr
        job = Job.fetch(job_id, connection=redis_db.client)
        assert job.get_status() == JobStatus.FINISHED
        assert job.return_value() == assert_synced(redis_db, app_db)
        shown = json.loads(usage_sync("schedule", "--json", env=env).stdout)
        assert (shown["lock_held"], shown["last_run"]["updated"]) == (False, 1)


# -- 7, 8. the schedulers across a real minute boundary


@dataclass
class SchedulerRun:
    """One scheduler's run across a minute boundary, on its own Redis and database."""

    redis: RedisDb
    db: OriginalDatabase
    env: dict[str, str]
    process: Background
    started_at: datetime
    first_due: datetime | None = None
    tick_job_id: str = ""
    enqueued_at: datetime | None = None
    exit_code: int | None = None

    @property
    def boundary(self) -> datetime:
        """The minute boundary at which the tick was queued."""
        assert self.enqueued_at is not None
        return self.enqueued_at.replace(second=0, microsecond=0)


def _rq_scheduler_due(client: Redis) -> datetime | None:
    score = client.zscore(SCHEDULED_JOBS_KEY, TICK_JOB_ID)
    return None if score is None else datetime.fromtimestamp(score, UTC)


def _rq_cron_due(client: Redis) -> datetime | None:
    for scheduler in CronScheduler.all(client):
        for job in scheduler.get_jobs():
            if job.name == CRON_JOB_NAME and job.next_enqueue_time is not None:
                return job.next_enqueue_time
    return None


def _rq_scheduler_enqueued(client: Redis) -> str | None:
    return TICK_JOB_ID if TICK_JOB_ID in Queue(QUEUE, connection=client).job_ids else None


def _rq_cron_enqueued(client: Redis) -> str | None:
    ids = get_cron_job_ids(CRON_JOB_NAME, client)
    return ids[-1] if ids else None  # the oldest: the first tick it queued


@pytest.fixture(scope="module")
def minute_boundary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SchedulerRun]]:
    """rq-scheduler and `rq cron` started together, each on its own Redis, past one boundary.

    Each waits (at most about 70 s) until its scheduler has queued the tick job, and is
    stopped before the tests run a worker.
    """
    commands = {
        "rq-scheduler": lambda url: [script("usage-sync"), "scheduler", "--interval", "1"],
        "rq-cron": lambda url: [script("rq"), "cron", "usage_entrypoints.rq_cron", "-u", url],
    }
    due = {"rq-scheduler": _rq_scheduler_due, "rq-cron": _rq_cron_due}
    enqueued = {"rq-scheduler": _rq_scheduler_enqueued, "rq-cron": _rq_cron_enqueued}
    with ExitStack() as stack:
        panel = stack.enter_context(eylandoo_panel())
        runs: dict[str, SchedulerRun] = {}
        for name, command in commands.items():
            workdir = tmp_path_factory.mktemp(name)
            redis_db = stack.enter_context(claimed_redis_db())
            db = stack.enter_context(sqlite_app_db(workdir / "app.sqlite"))
            seed(db, panel, interval="1")
            env = app_env(redis_db.url, db.url, workdir)
            started_at = datetime.now(UTC)
            process = stack.enter_context(
                background(command(redis_db.url), env=env, output=workdir / "scheduler.out")
            )
            runs[name] = SchedulerRun(redis_db, db, env, process, started_at)
        for name, run in runs.items():
            run.first_due = wait_for(
                lambda c=run.redis.client, f=due[name]: f(c),
                timeout=30,
                what=f"{name} to register the every-minute tick",
                alive=run.process,
            )
        for name, run in runs.items():
            assert run.first_due is not None
            left = (run.first_due - datetime.now(UTC)).total_seconds()
            run.tick_job_id = wait_for(
                lambda c=run.redis.client, f=enqueued[name]: f(c),
                timeout=min(max(left, 0), 61) + ENQUEUE_SLACK.total_seconds(),
                what=f"{name} to queue the tick due at {run.first_due:%H:%M:%S}",
                alive=run.process,
            )
            job = Job.fetch(run.tick_job_id, connection=run.redis.client)
            assert job.enqueued_at is not None
            run.enqueued_at = job.enqueued_at.replace(tzinfo=UTC)
        for run in runs.values():
            run.exit_code = run.process.stop()
        yield runs


def assert_queued_at_a_boundary(run: SchedulerRun) -> None:
    """The scheduler planned the tick for a whole minute and queued it just after one."""
    assert run.first_due is not None
    assert (run.first_due.second, run.first_due.microsecond) == (0, 0)
    assert run.started_at <= run.boundary
    assert run.boundary in (run.first_due, run.first_due - timedelta(minutes=1))
    assert run.enqueued_at is not None
    assert run.enqueued_at - run.boundary <= ENQUEUE_SLACK
    assert run.exit_code == 0, run.process.text()


class TestRqScheduler:
    """`usage-sync scheduler` (rq-scheduler) queues the tick every minute."""

    def test_tick_queued_at_the_minute_boundary_dispatches_a_sync(
        self, minute_boundary: dict[str, SchedulerRun]
    ) -> None:
        """At hh:mm:00 the tick is queued; a worker runs it, and it dispatches a sync that runs."""
        run = minute_boundary["rq-scheduler"]
        client = run.redis.client
        assert_queued_at_a_boundary(run)
        job = Job.fetch(TICK_JOB_ID, connection=client)
        assert (job.func_name, job.origin) == (TICK_JOB, QUEUE)
        # The entry stays, due a minute later.
        assert _rq_scheduler_due(client) == run.boundary + timedelta(minutes=1)

        worker = usage_sync("worker", "--burst", env=run.env, timeout=120)

        assert worker.returncode == 0, worker.stderr
        tick = Job.fetch(TICK_JOB_ID, connection=client)
        assert tick.get_status() == JobStatus.FINISHED
        result = tick.return_value()
        assert isinstance(result, dict)
        assert (result["interval"], result["dispatch"], result["dispatched"]) == (1, True, True)
        assert_synced(run.redis, run.db)

    def test_restart_keeps_one_cron_entry(
        self, redis_db: RedisDb, env: dict[str, str], tmp_path: Path
    ) -> None:
        """Stopping and starting the scheduler replaces its entry instead of adding one."""
        client = redis_db.client
        for attempt in (1, 2):
            known = _live_scheduler_instances(client)
            with background(
                [script("usage-sync"), "scheduler", "--interval", "1"],
                env=env,
                output=tmp_path / f"scheduler-{attempt}.out",
            ) as process:
                wait_for(
                    lambda known=known: _live_scheduler_instances(client) - known,
                    timeout=30,
                    what=f"scheduler run {attempt} to start",
                    alive=process,
                )
                assert client.zcard(SCHEDULED_JOBS_KEY) == 1, process.text()
                assert client.zrange(SCHEDULED_JOBS_KEY, 0, -1) == [TICK_JOB_ID.encode()]
                assert process.stop() == 0, process.text()
        assert sorted(client.scan_iter("rq:job:*")) == [f"rq:job:{TICK_JOB_ID}".encode()]
        job = Job.fetch(TICK_JOB_ID, connection=client)
        assert job.meta.get("cron_string") == "* * * * *"
        assert (job.func_name, job.origin, job.timeout) == (TICK_JOB, QUEUE, 60)
        assert Queue(QUEUE, connection=client).count == 0


def _live_scheduler_instances(client: Redis) -> set[str]:
    """rq-scheduler instances registered and not yet dead."""
    return {
        key.decode()
        for key in client.scan_iter("rq:scheduler_instance:*")
        if not client.hexists(key, "death")
    }


class TestRqCron:
    """`rq cron usage_entrypoints.rq_cron` queues the tick every minute."""

    def test_config_module_registers_an_every_minute_tick(
        self, redis_db: RedisDb, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Loaded into a CronScheduler, the module registers the tick for the next hh:mm:00."""
        monkeypatch.delenv("USAGE_SYNC_QUEUE", raising=False)
        scheduler = CronScheduler(connection=redis_db.client)
        scheduler.load_config_from_file("usage_entrypoints.rq_cron")
        [cron_job] = scheduler.get_jobs()
        assert (cron_job.func_name, cron_job.cron) == (TICK_JOB, "* * * * *")
        assert (cron_job.queue_name, cron_job.name) == (QUEUE, CRON_JOB_NAME)
        assert cron_job.job_options["job_timeout"] == 60
        due = cron_job.next_enqueue_time
        assert due is not None
        assert (due.second, due.microsecond) == (0, 0)
        assert timedelta(0) < due - datetime.now(UTC) <= timedelta(minutes=1)
        assert scheduler.enqueue_jobs() == []
        assert queue_of(redis_db).count == 0

    def test_tick_queued_at_the_minute_boundary_dispatches_a_sync(
        self, minute_boundary: dict[str, SchedulerRun]
    ) -> None:
        """At hh:mm:00 `rq cron` queues the tick; a worker runs it, and the sync it queues runs."""
        run = minute_boundary["rq-cron"]
        client = run.redis.client
        assert_queued_at_a_boundary(run)
        assert get_cron_job_ids(CRON_JOB_NAME, client) == [run.tick_job_id]
        job = Job.fetch(run.tick_job_id, connection=client)
        assert (job.func_name, job.origin) == (TICK_JOB, QUEUE)

        worker = usage_sync("worker", "--burst", env=run.env, timeout=120)

        assert worker.returncode == 0, worker.stderr
        tick = Job.fetch(run.tick_job_id, connection=client)
        assert tick.get_status() == JobStatus.FINISHED
        result = tick.return_value()
        assert isinstance(result, dict)
        assert (result["interval"], result["dispatch"], result["dispatched"]) == (1, True, True)
        assert_synced(run.redis, run.db)
