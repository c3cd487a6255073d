"""The scheduler tick and the unique dispatch, with fakes."""

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest

from tests.fakes import InMemoryLock, InMemorySettings, InMemorySlots, RecordingQueue
from usage_core.dispatch import SLOT_TTL_SECONDS, SchedulerTick, dispatch_unique, slot_of
from usage_core.interval import INTERVAL_SETTING_KEY

AT_10_00 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
AT_10_03 = datetime(2026, 11, 24, 10, 3, tzinfo=UTC)


@attrs.define
class Seconds:
    """A settable clock for the fake lock."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingSlots(InMemorySlots):
    """Claimed minutes, with every claim asked for and its TTL."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, int]] = []

    def claim(self, slot: str, ttl_seconds: int) -> bool:
        self.asked.append((slot, ttl_seconds))
        return super().claim(slot, ttl_seconds)


def tick_world(
    raw: str | None, tz: str = "UTC", slots: InMemorySlots | None = None
) -> tuple[SchedulerTick, InMemoryLock, RecordingQueue]:
    """A tick over in-memory settings, lock, queue and claimed minutes."""
    settings = InMemorySettings({} if raw is None else {INTERVAL_SETTING_KEY: raw})
    lock, queue = InMemoryLock(Seconds()), RecordingQueue()
    claimed = InMemorySlots() if slots is None else slots
    return SchedulerTick(settings, lock, queue, ZoneInfo(tz), claimed), lock, queue


class TestTick:
    """`SchedulerTick` reads the setting, decides and dispatches."""

    @pytest.mark.parametrize(
        ("raw", "interval"), [("abc", 5), ("10", 5), ("0", 1), (" 2 ", 2), (None, 5)]
    )
    def test_raw_values(self, raw: str | None, interval: int) -> None:
        """Garbage, out-of-range and padded values give the documented interval."""
        tick, _, _ = tick_world(raw)
        result = tick(AT_10_00)
        assert result.decision.interval == interval
        assert result.dispatched

    def test_off_minute_does_not_dispatch(self) -> None:
        """Minute 3 with interval 5 decides not to dispatch."""
        tick, _, queue = tick_world("5")
        result = tick(AT_10_03)
        assert (result.decision.dispatch, result.dispatched) == (False, False)
        assert queue.tokens == []

    def test_dry_run_decides_without_dispatching(self) -> None:
        """A dry run reports the decision and queues nothing."""
        tick, _, queue = tick_world("1")
        result = tick(AT_10_03, dry_run=True)
        assert result.decision.dispatch
        assert not result.dispatched
        assert queue.tokens == []

    def test_json_document(self) -> None:
        """`as_dict` has exactly the documented keys."""
        tick, _, _ = tick_world("4", tz="Asia/Tehran")
        document = tick(AT_10_00).as_dict()
        assert document == {
            "interval": 4,
            "raw": "4",
            "minute": 30,
            "dispatch": False,
            "dispatched": False,
            "reason": document["reason"],
        }

    def test_bad_value_is_logged_by_name(self, caplog: pytest.LogCaptureFixture) -> None:
        """A garbage setting is logged with the bad value."""
        tick, _, _ = tick_world("5 minutes")
        with caplog.at_level(logging.WARNING):
            tick(AT_10_00)
        assert "'5 minutes'" in caplog.text

    def test_dispatch_logs_the_seed_line(self, caplog: pytest.LogCaptureFixture) -> None:
        """Dispatching logs `Scheduling SyncResellerUsageJob (interval: 3 minutes)`."""
        tick, _, _ = tick_world("3")
        with caplog.at_level(logging.INFO):
            tick(AT_10_00)
        assert "Scheduling SyncResellerUsageJob (interval: 3 minutes)" in caplog.text

    def test_second_dispatch_while_locked_is_skipped(self) -> None:
        """A tick while the previous job holds the lock is skipped and says so."""
        tick, _, queue = tick_world("1")
        first, second = tick(AT_10_00), tick(AT_10_03)
        assert first.dispatched
        assert not second.dispatched
        assert "unique lock is held" in second.reason
        assert len(queue.tokens) == 1

    def test_one_dispatch_per_minute_even_after_the_lock_is_freed(self) -> None:
        """A late tick in a minute whose run already finished dispatches nothing."""
        tick, lock, queue = tick_world("1")
        assert tick(AT_10_00).dispatched
        assert lock.release(queue.tokens[0])
        late = tick(AT_10_00 + timedelta(seconds=40))
        assert not late.dispatched
        assert "was dispatched already" in late.reason
        assert tick(AT_10_03).dispatched
        assert len(queue.tokens) == 2


class TestDispatchSlots:
    """A dispatching tick claims its minute once, as a UTC key, for an hour."""

    def test_slot_is_the_decided_minute_in_utc(self) -> None:
        """Ticks at :00 s and :59 s of one minute claim the same key, for SLOT_TTL_SECONDS."""
        slots = RecordingSlots()
        tick, _, _ = tick_world("1", slots=slots)
        assert tick(AT_10_00 + timedelta(seconds=59, microseconds=999)).dispatched
        assert not tick(AT_10_00).dispatched
        assert slots.asked == [("202611241000", SLOT_TTL_SECONDS)] * 2

    def test_slot_does_not_depend_on_the_timezone(self) -> None:
        """In Asia/Tehran, 10:00 UTC's tick claims 202611241000, whatever the local time."""
        slots = RecordingSlots()
        tick, _, _ = tick_world("30", tz="Asia/Tehran", slots=slots)
        tehran = AT_10_00.astimezone(ZoneInfo("Asia/Tehran"))
        assert tick(tehran).dispatched
        assert slots.claimed == {"202611241000"}
        assert slot_of(tehran) == slot_of(AT_10_00)

    def test_different_minutes_are_claimed_separately(self) -> None:
        """Two dispatch minutes each get their own claim and their own dispatch."""
        slots = RecordingSlots()
        tick, lock, queue = tick_world("1", slots=slots)
        assert tick(AT_10_00).dispatched
        assert lock.release(queue.tokens[0])
        assert tick(AT_10_00 + timedelta(minutes=1)).dispatched
        assert slots.claimed == {"202611241000", "202611241001"}

    def test_no_claim_without_a_dispatch_decision(self) -> None:
        """An off minute and a dry run claim nothing, so the real tick of a minute still runs."""
        slots = RecordingSlots()
        tick, _, _ = tick_world("5", slots=slots)
        assert not tick(AT_10_03).dispatched
        assert not tick(AT_10_00, dry_run=True).dispatched
        assert slots.asked == []
        assert tick(AT_10_00).dispatched

    def test_a_refused_claim_leaves_the_lock_alone(self) -> None:
        """A tick whose minute was claimed elsewhere neither takes the lock nor queues."""
        slots = RecordingSlots()
        slots.claimed.add("202611241000")
        tick, lock, queue = tick_world("1", slots=slots)
        result = tick(AT_10_00)
        assert not result.dispatched
        assert result.reason == "skipped: minute 202611241000 was dispatched already"
        assert lock.remaining_seconds() is None
        assert queue.tokens == []


class TestUniqueDispatch:
    """`dispatch_unique` takes the lock at dispatch, as Laravel's ShouldBeUnique does."""

    def test_lock_expires_after_300_seconds(self) -> None:
        """An unreleased lock (a worker killed hard) frees itself after its TTL."""
        clock = Seconds()
        lock, queue = InMemoryLock(clock), RecordingQueue()
        assert dispatch_unique(lock, queue).dispatched
        clock.now = 299
        assert not dispatch_unique(lock, queue).dispatched
        clock.now = 300
        assert dispatch_unique(lock, queue).dispatched

    def test_failed_enqueue_releases_the_lock(self) -> None:
        """If queueing fails, the lock is released so the next tick can try."""
        lock = InMemoryLock(Seconds())
        with pytest.raises(ConnectionError):
            dispatch_unique(lock, RecordingQueue(fail=True))
        assert lock.remaining_seconds() is None
