"""The RQ worker and scheduler loops, kept running through Redis outages and restarts.

RQ's worker quits on the first Redis error, and rq-scheduler keeps its cron
entry only in Redis: a Redis restart without persistence used to leave both
processes alive and nothing scheduled. These loops catch the connection
errors, wait with a growing pause (at most 10 s, so that a due minute after
Redis returns is rarely missed), start again with a fresh worker, and
re-create the scheduler's entry whenever it is missing.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from usage_entrypoints.job_names import TICK_JOB

logger = logging.getLogger(__name__)

TICK_JOB_ID = "usage-sync-tick"
MAX_PAUSE_S = 10.0
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class Outage:
    """Logs an outage once when it starts and once when it ends, and paces the retries."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._since: float | None = None
        self._pause = 1.0

    def failed(self, exc: BaseException) -> float:
        """Note a failure; the seconds to wait before trying again."""
        if self._since is None:
            self._since = time.monotonic()
            logger.warning(
                "%s: Redis is unreachable (%s); retrying until it is back",
                self._what,
                type(exc).__name__,
            )
        pause, self._pause = self._pause, min(self._pause * 2, MAX_PAUSE_S)
        return pause

    def ok(self) -> None:
        """Note a success; says how long the outage lasted, if there was one."""
        if self._since is not None:
            logger.info(
                "%s: Redis is back after %.0f s", self._what, time.monotonic() - self._since
            )
        self._since, self._pause = None, 1.0


def stop_on_signals(stop: threading.Event) -> None:
    def on_signal(signum: int, _frame: object) -> None:
        logger.info("Received signal %s; stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def keep_working(make_worker: Callable[[], Any], *, burst: bool, stop: threading.Event) -> None:
    """Run RQ workers one after another until one ends normally (a signal, or `burst`)."""
    outage = Outage("usage-sync worker")
    while not stop.is_set():
        try:
            # No scheduler process in the worker: retries are re-enqueued at once
            # (no interval), and the cron entry belongs to `usage-sync scheduler`.
            make_worker().work(burst=burst, with_scheduler=False)
        except REDIS_DOWN as exc:
            pause = outage.failed(exc)
            stop_on_signals(stop)  # RQ's own handlers belong to the worker that just died
            stop.wait(pause)
            continue
        return


def ensure_tick_entry(scheduler: Any, queue_name: str, *, replace: bool = False) -> bool:
    """Make sure rq-scheduler has the every-minute tick entry; True when it had to be added."""
    if not replace and TICK_JOB_ID in scheduler:
        return False
    if replace:
        for job in scheduler.get_jobs():
            if job.id == TICK_JOB_ID:
                scheduler.cancel(job)
    scheduler.cron(
        "* * * * *",
        func=TICK_JOB,
        id=TICK_JOB_ID,
        queue_name=queue_name,
        timeout=60,
        result_ttl=600,
        description="usage-sync scheduler tick",
    )
    return True


def quiet_rq_scheduler() -> None:
    """Silence rq-scheduler's FutureWarning about its cron library's time zones.

    It is about a dependency's future default and printed at every start and
    cron computation; the tick itself reads the minute in USAGE_SYNC_TIMEZONE.
    """
    warnings.filterwarnings("ignore", category=FutureWarning, module="rq_scheduler")


def keep_scheduling(
    make_scheduler: Callable[[], Any],
    queue_name: str,
    *,
    interval: float,
    stop: threading.Event,
) -> None:
    """rq-scheduler's loop, re-creating the tick entry when Redis has lost it."""
    outage = Outage("usage-sync scheduler")
    scheduler = make_scheduler()
    try:
        _loop(scheduler, queue_name, interval, stop, outage)
    finally:
        with contextlib.suppress(*REDIS_DOWN):
            scheduler.register_death()


def _loop(
    scheduler: Any, queue_name: str, interval: float, stop: threading.Event, outage: Outage
) -> None:
    replaced = False
    while not stop.is_set():
        try:
            if not scheduler.connection.exists(scheduler.key):
                scheduler.register_birth()  # first, or after Redis lost the registration
            scheduler.heartbeat()
            added = ensure_tick_entry(scheduler, queue_name, replace=not replaced)
            if added and replaced:
                logger.warning("The scheduler's tick entry was missing (Redis lost it); re-created")
            replaced = True
            if scheduler.acquire_lock():
                try:
                    scheduler.enqueue_jobs()
                finally:
                    scheduler.remove_lock()
            outage.ok()
            pause = interval
        except REDIS_DOWN as exc:
            pause = outage.failed(exc)
        stop.wait(pause)


def connection_alive(redis: Redis) -> bool:
    """True when Redis answers a PING."""
    try:
        return bool(redis.ping())
    except REDIS_DOWN:
        return False
