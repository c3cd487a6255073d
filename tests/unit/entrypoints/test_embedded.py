"""The embedded scheduler loop, driven by a fake clock."""

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest

from tests.fakes import InMemoryLock, InMemorySettings, InMemorySlots, RecordingQueue
from usage_core.dispatch import SchedulerTick, TickResult
from usage_core.errors import MissingTablesError
from usage_core.interval import INTERVAL_SETTING_KEY
from usage_entrypoints.embedded import run_loop, seconds_to_next_minute

START = datetime(2026, 11, 24, 10, 0, 20, tzinfo=UTC)


@attrs.define
class FakeTime:
    """A clock whose `sleep` advances it; stops after a number of sleeps."""

    instant: datetime
    sleeps_left: int
    slept: list[float] = attrs.field(factory=list)

    def now(self) -> datetime:
        return self.instant

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.instant += timedelta(seconds=seconds)
        self.sleeps_left -= 1

    def stop(self) -> bool:
        return self.sleeps_left < 0


class TestRunLoop:
    """`run_loop` ticks once per minute, at the minute, and survives failing ticks."""

    def test_ticks_once_per_minute_and_dispatches_on_interval(self) -> None:
        """Ten minutes at interval 2 give ten ticks and five dispatches."""
        settings = InMemorySettings({INTERVAL_SETTING_KEY: "2"})
        queue = RecordingQueue()
        clock = FakeTime(START, sleeps_left=9)
        released = InMemoryLock(lambda: clock.instant.timestamp())  # noqa: PLW0108 - late binding

        def tick(now: datetime) -> TickResult:
            result = SchedulerTick(settings, released, queue, ZoneInfo("UTC"), InMemorySlots())(now)
            if result.dispatched:
                # The inline job finished: its lock is released at once.
                released.release(queue.tokens[-1])
            return result

        ticks = run_loop(tick, clock, clock.sleep, clock.stop)
        assert ticks == 10
        assert len(queue.tokens) == 5
        # The first sleep reaches the next minute boundary, then a minute each.
        assert round(clock.slept[0], 2) == 40.01
        assert all(round(s) == 60 for s in clock.slept[1:])

    def test_failing_tick_does_not_stop_the_loop(self) -> None:
        """A tick that raises is logged and the next minute ticks again."""
        clock = FakeTime(START, sleeps_left=2)
        calls: list[datetime] = []

        def tick(now: datetime) -> TickResult:
            calls.append(now)
            msg = "database down"
            raise ConnectionError(msg)

        assert run_loop(tick, clock, clock.sleep, clock.stop) == 3
        assert len(calls) == 3

    def test_database_error_is_one_line(self, caplog: pytest.LogCaptureFixture) -> None:
        """A tick that meets a database without tables logs its reason, without a traceback."""
        clock = FakeTime(START, sleeps_left=0)

        def tick(now: datetime) -> TickResult:
            raise MissingTablesError("no such table: settings")

        with caplog.at_level(logging.ERROR):
            run_loop(tick, clock, clock.sleep, clock.stop)
        (record,) = caplog.records
        assert record.getMessage() == "Scheduler tick failed: no such table: settings"
        assert record.exc_info is None

    def test_seconds_to_next_minute(self) -> None:
        """From hh:mm:20.5 the next minute is 39.5 s away."""
        assert seconds_to_next_minute(START.replace(microsecond=500_000)) == 39.5
