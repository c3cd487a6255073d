"""The RQ worker and scheduler loops through Redis outages, with fake workers and schedulers."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace

import attrs
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from usage_entrypoints import rq_runtime
from usage_entrypoints.job_names import TICK_JOB
from usage_entrypoints.rq_runtime import (
    MAX_PAUSE_S,
    TICK_JOB_ID,
    Outage,
    ensure_tick_entry,
    keep_scheduling,
    keep_working,
)

QUEUE = "usage-sync-test"
INTERVAL = 5.0
LOGGER = "usage_entrypoints.rq_runtime"


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    """SIGTERM and SIGINT handled as before, whatever handlers `keep_working` installed."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class Rounds(threading.Event):
    """A stop event whose `wait` returns at once: it records the pause, runs the
    next change scheduled between two rounds, and sets itself when none is left."""

    def __init__(self, between: Sequence[Callable[[], None]] = ()) -> None:
        super().__init__()
        self.between = list(between)
        self.pauses: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(timeout)
        if self.between:
            self.between.pop(0)()
        else:
            self.set()
        return self.is_set()


def redis_down() -> RedisConnectionError:
    """The error redis-py raises when the server is gone."""
    return RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


# -- the outage log and pause


@attrs.define
class Monotonic:
    """A settable monotonic clock."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    """The clock `Outage` measures an outage's length on."""
    clock = Monotonic()
    monkeypatch.setattr(rq_runtime, "time", SimpleNamespace(monotonic=clock))
    return clock


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """The runtime's log lines as (level, message)."""
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


class TestOutage:
    """An outage is logged once at each end, and its retries back off up to a ceiling."""

    def test_logs_the_start_once_and_the_end_with_its_length(
        self, monotonic: Monotonic, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Three failures give one warning; the success after them says how long it lasted."""
        outage = Outage("usage-sync worker")
        with caplog.at_level(logging.INFO, logger=LOGGER):
            outage.failed(redis_down())
            monotonic.now += 20
            outage.failed(redis_down())
            monotonic.now += 22
            outage.failed(redis_down())
            outage.ok()
            outage.ok()
        assert messages(caplog) == [
            (
                logging.WARNING,
                "usage-sync worker: Redis is unreachable (ConnectionError); "
                "retrying until it is back",
            ),
            (logging.INFO, "usage-sync worker: Redis is back after 42 s"),
        ]

    def test_success_without_an_outage_logs_nothing(self, caplog: pytest.LogCaptureFixture) -> None:
        """`ok` with no failure before it is silent."""
        with caplog.at_level(logging.INFO, logger=LOGGER):
            Outage("usage-sync scheduler").ok()
        assert messages(caplog) == []

    def test_pause_doubles_up_to_the_ceiling(self) -> None:
        """The pauses are 1, 2, 4, 8 s, then the 10 s ceiling for every later failure."""
        outage = Outage("usage-sync worker")
        pauses = [outage.failed(redis_down()) for _ in range(8)]
        assert pauses == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
        assert MAX_PAUSE_S == 10.0

    def test_success_resets_pause_and_log(
        self, monotonic: Monotonic, caplog: pytest.LogCaptureFixture
    ) -> None:
        """After a success, the next outage starts over at 1 s and is logged again."""
        outage = Outage("usage-sync worker")
        with caplog.at_level(logging.INFO, logger=LOGGER):
            for _ in range(4):
                outage.failed(redis_down())
            outage.ok()
            monotonic.now += 7
            assert outage.failed(redis_down()) == 1.0
            assert outage.failed(redis_down()) == 2.0
            monotonic.now += 3
            outage.ok()
        lines = messages(caplog)
        assert [level for level, _ in lines] == [
            logging.WARNING,
            logging.INFO,
            logging.WARNING,
            logging.INFO,
        ]
        # The second outage is measured from its own start.
        assert lines[3][1].endswith("Redis is back after 3 s")


# -- the worker loop


class FakeWorker:
    """An RQ worker whose `work` ends as its factory's script says."""

    def __init__(self, workers: FakeWorkers, ending: BaseException | None) -> None:
        self.workers = workers
        self.ending = ending

    def work(self, *, burst: bool, with_scheduler: bool) -> bool:
        self.workers.calls.append((burst, with_scheduler))
        if self.ending is not None:
            raise self.ending
        return True


class FakeWorkers:
    """Makes workers that end, one after another, by the scripted errors (None: normally)."""

    def __init__(self, endings: Sequence[BaseException | None]) -> None:
        self.endings = list(endings)
        self.made = 0
        self.calls: list[tuple[bool, bool]] = []

    def __call__(self) -> FakeWorker:
        self.made += 1
        return FakeWorker(self, self.endings.pop(0))


class TestKeepWorking:
    """`keep_working` starts a fresh worker after each Redis failure until one ends normally."""

    def test_new_worker_after_each_redis_failure(self, caplog: pytest.LogCaptureFixture) -> None:
        """Two connection errors give two pauses and three workers; the normal end returns."""
        workers = FakeWorkers([redis_down(), redis_down(), None])
        # Room for more pauses than needed: only the normal end may end the loop.
        stop = Rounds([lambda: None] * 3)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            keep_working(workers, burst=True, stop=stop)
        assert workers.made == 3
        # Never RQ's own scheduler process: the cron entry is the scheduler command's.
        assert workers.calls == [(True, False)] * 3
        assert stop.pauses == [1.0, 2.0]
        assert not stop.is_set()
        assert len(messages(caplog)) == 1

    def test_stop_set_before_start_does_nothing(self) -> None:
        """A stop already requested makes no worker."""
        workers = FakeWorkers([None])
        stop = Rounds()
        stop.set()
        keep_working(workers, burst=False, stop=stop)
        assert workers.made == 0
        assert stop.pauses == []

    def test_other_errors_end_the_loop(self) -> None:
        """An error that is not Redis going away is not retried."""
        workers = FakeWorkers([ValueError("a bug"), None])
        with pytest.raises(ValueError, match="a bug"):
            keep_working(workers, burst=True, stop=Rounds())
        assert workers.made == 1

    def test_a_signal_during_the_pause_stops_the_loop(self) -> None:
        """SIGTERM while waiting after a failure ends the loop before another worker starts."""
        # A handler that only notes the signal, standing for the dead worker's own.
        signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
        workers = FakeWorkers([redis_down(), redis_down()])
        stop = Rounds([lambda: signal.raise_signal(signal.SIGTERM)])
        keep_working(workers, burst=False, stop=stop)
        assert stop.is_set()
        assert workers.made == 1


# -- the scheduler loop


@attrs.define
class FakeJob:
    """A scheduled job: its id and the arguments it was scheduled with."""

    id: str
    options: dict[str, object] = attrs.field(factory=dict)


class FakeRedis:
    """The keys a scheduler's registration lives in; `down` makes every call fail."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.down = False

    def exists(self, *names: str) -> int:
        if self.down:
            raise redis_down()
        return sum(name in self.keys for name in names)


class FakeScheduler:
    """What `keep_scheduling` uses of rq-scheduler's `Scheduler`, over in-memory state.

    `connection.down` makes every call raise a connection error; `lose_everything`
    is a Redis restarted without persistence.
    """

    key = "rq:scheduler_instance:fake"

    def __init__(self, jobs: Sequence[FakeJob] = (), *, lock_free: bool = True) -> None:
        self.connection = FakeRedis()
        self.jobs = {job.id: job for job in jobs}
        self.lock_free = lock_free
        self.calls: list[str] = []
        self.cancelled: list[str] = []
        self.crons: list[dict[str, object]] = []

    def _call(self, name: str) -> None:
        if self.connection.down:
            raise redis_down()
        self.calls.append(name)

    def lose_everything(self) -> None:
        self.jobs.clear()
        self.connection.keys.clear()

    def __contains__(self, job_id: object) -> bool:
        self._call("contains")
        return job_id in self.jobs

    def get_jobs(self) -> list[FakeJob]:
        self._call("get_jobs")
        return list(self.jobs.values())

    def cancel(self, job: FakeJob) -> None:
        self._call("cancel")
        self.cancelled.append(job.id)
        del self.jobs[job.id]

    def cron(self, cron_string: str, **options: object) -> FakeJob:
        self._call("cron")
        job = FakeJob(str(options["id"]), {"cron_string": cron_string, **options})
        self.crons.append(job.options)
        self.jobs[job.id] = job
        return job

    def register_birth(self) -> None:
        self._call("register_birth")
        self.connection.keys.add(self.key)

    def heartbeat(self) -> None:
        self._call("heartbeat")

    def acquire_lock(self) -> bool:
        self._call("acquire_lock")
        return self.lock_free

    def enqueue_jobs(self) -> list[FakeJob]:
        self._call("enqueue_jobs")
        return []

    def remove_lock(self) -> None:
        self._call("remove_lock")

    def register_death(self) -> None:
        self._call("register_death")


def schedule(scheduler: FakeScheduler, stop: Rounds) -> None:
    """`keep_scheduling` on `scheduler` until `stop` runs out of rounds."""
    keep_scheduling(lambda: scheduler, QUEUE, interval=INTERVAL, stop=stop)


def ids(scheduler: FakeScheduler) -> list[str]:
    """The ids of the scheduler's entries."""
    return sorted(scheduler.jobs)


class TestEnsureTickEntry:
    """`ensure_tick_entry` adds the every-minute tick when missing, or replaces it."""

    def test_adds_a_missing_entry(self) -> None:
        """Without the entry, it is added as an every-minute tick on the queue."""
        scheduler = FakeScheduler()
        assert ensure_tick_entry(scheduler, QUEUE) is True
        assert scheduler.crons == [
            {
                "cron_string": "* * * * *",
                "func": TICK_JOB,
                "id": TICK_JOB_ID,
                "queue_name": QUEUE,
                "timeout": 60,
                "result_ttl": 600,
                "description": "usage-sync scheduler tick",
            }
        ]

    def test_keeps_a_present_entry(self) -> None:
        """With the entry there, nothing is added or cancelled."""
        scheduler = FakeScheduler([FakeJob(TICK_JOB_ID)])
        assert ensure_tick_entry(scheduler, QUEUE) is False
        assert (scheduler.crons, scheduler.cancelled) == ([], [])

    def test_replace_cancels_only_the_tick(self) -> None:
        """Replacing cancels the old tick entry, keeps other jobs, and adds the new one."""
        old = FakeJob(TICK_JOB_ID, {"queue_name": "old-queue"})
        scheduler = FakeScheduler([old, FakeJob("someone-elses-job")])
        assert ensure_tick_entry(scheduler, QUEUE, replace=True) is True
        assert scheduler.cancelled == [TICK_JOB_ID]
        assert ids(scheduler) == sorted(["someone-elses-job", TICK_JOB_ID])
        assert scheduler.jobs[TICK_JOB_ID].options["queue_name"] == QUEUE


class TestKeepScheduling:
    """`keep_scheduling` keeps the tick entry and the registration through Redis losing them."""

    def test_replaces_the_entry_once_at_start(self, caplog: pytest.LogCaptureFixture) -> None:
        """A stale entry from the last run is replaced in the first round only, silently."""
        scheduler = FakeScheduler([FakeJob(TICK_JOB_ID, {"queue_name": "old-queue"})])
        stop = Rounds([lambda: None, lambda: None])
        with caplog.at_level(logging.INFO, logger=LOGGER):
            schedule(scheduler, stop)
        assert scheduler.cancelled == [TICK_JOB_ID]
        assert len(scheduler.crons) == 1
        assert scheduler.jobs[TICK_JOB_ID].options["queue_name"] == QUEUE
        assert scheduler.calls.count("register_birth") == 1
        assert scheduler.calls.count("heartbeat") == 3
        assert scheduler.calls.count("enqueue_jobs") == 3
        assert scheduler.calls.count("remove_lock") == 3
        assert scheduler.calls[-1] == "register_death"
        assert stop.pauses == [INTERVAL] * 3
        assert messages(caplog) == []

    def test_enqueues_only_under_the_scheduler_lock(self) -> None:
        """While another scheduler holds rq-scheduler's lock, nothing is enqueued here."""
        scheduler = FakeScheduler(lock_free=False)
        schedule(scheduler, Rounds([lambda: None]))
        assert scheduler.calls.count("acquire_lock") == 2
        assert "enqueue_jobs" not in scheduler.calls
        assert "remove_lock" not in scheduler.calls

    def test_recreates_a_lost_entry_with_a_warning(self, caplog: pytest.LogCaptureFixture) -> None:
        """Redis restarted empty: the next round registers again and re-creates the entry."""
        scheduler = FakeScheduler()
        stop = Rounds([scheduler.lose_everything, lambda: None])
        with caplog.at_level(logging.INFO, logger=LOGGER):
            schedule(scheduler, stop)
        assert ids(scheduler) == [TICK_JOB_ID]
        assert len(scheduler.crons) == 2
        assert scheduler.cancelled == []
        assert scheduler.calls.count("register_birth") == 2
        assert messages(caplog) == [
            (
                logging.WARNING,
                "The scheduler's tick entry was missing (Redis lost it); re-created",
            )
        ]

    def test_registers_again_when_the_key_is_gone(self) -> None:
        """A registration that expired is re-done; the entry, still there, is left alone."""
        scheduler = FakeScheduler()
        stop = Rounds([scheduler.connection.keys.clear, lambda: None])
        schedule(scheduler, stop)
        assert scheduler.calls.count("register_birth") == 2
        assert len(scheduler.crons) == 1
        assert scheduler.connection.exists(scheduler.key) == 1

    def test_connection_error_mid_loop_does_not_end_it(
        self, monotonic: Monotonic, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Two rounds without Redis back off 1 s then 2 s, and the loop goes on when it is back."""
        scheduler = FakeScheduler()

        def go_down() -> None:
            scheduler.connection.down = True

        def come_back() -> None:
            scheduler.connection.down = False
            monotonic.now += 3

        stop = Rounds([go_down, lambda: None, come_back])
        with caplog.at_level(logging.INFO, logger=LOGGER):
            schedule(scheduler, stop)
        assert stop.pauses == [INTERVAL, 1.0, 2.0, INTERVAL]
        assert scheduler.calls.count("enqueue_jobs") == 2
        assert scheduler.calls[-1] == "register_death"
        assert [level for level, _ in messages(caplog)] == [logging.WARNING, logging.INFO]
        assert messages(caplog)[1][1] == "usage-sync scheduler: Redis is back after 3 s"

    def test_stopping_while_redis_is_down_ends_quietly(self) -> None:
        """The registration's removal, failing because Redis is down, does not raise."""
        scheduler = FakeScheduler()

        def go_down() -> None:
            scheduler.connection.down = True

        stop = Rounds([go_down])
        schedule(scheduler, stop)
        assert stop.pauses == [INTERVAL, 1.0]
        assert "register_death" not in scheduler.calls
