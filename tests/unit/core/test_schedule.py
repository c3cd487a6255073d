"""The schedule decision: which minutes dispatch the sync."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage_core.interval import parse_interval
from usage_core.schedule import decide, next_dispatch_times

TEHRAN = ZoneInfo("Asia/Tehran")
HOUR = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def dispatch_minutes(interval: int, tz: ZoneInfo, start: datetime = HOUR) -> list[int]:
    """The UTC minutes of one hour from `start` at which a tick dispatches."""
    setting = parse_interval(str(interval))
    return [m for m in range(60) if decide(start + timedelta(minutes=m), setting, tz).dispatch]


class TestDecide:
    """`decide` dispatches when the local minute is a multiple of the interval."""

    @pytest.mark.parametrize("interval", [1, 2, 3, 4, 5])
    def test_seed_tables_in_utc(self, interval: int) -> None:
        """Each interval fires at exactly the minutes the seed lists."""
        assert dispatch_minutes(interval, ZoneInfo("UTC")) == list(range(0, 60, interval))

    @given(st.integers(1, 5), st.datetimes(timezones=st.just(UTC)))
    def test_sixty_over_interval_dispatches_per_hour(self, interval: int, start: datetime) -> None:
        """Any 60 consecutive minutes hold exactly 60 / interval dispatch minutes."""
        assert len(dispatch_minutes(interval, TEHRAN, start)) == 60 // interval

    def test_tehran_half_hour_offset_moves_interval_4(self) -> None:
        """Interval 4 read in Asia/Tehran (UTC+03:30) fires on UTC minutes 2, 6, ... 58."""
        assert dispatch_minutes(4, TEHRAN) == list(range(2, 60, 4))
        assert dispatch_minutes(4, ZoneInfo("UTC")) == list(range(0, 60, 4))

    def test_tehran_local_minute_is_reported(self) -> None:
        """The decision carries the local minute, not the UTC one."""
        decision = decide(HOUR, parse_interval("4"), TEHRAN)
        assert decision.minute == 30
        assert decision.dispatch is False
        assert "30" in decision.reason

    def test_bad_setting_uses_the_default(self) -> None:
        """A garbage value decides on 5 minutes and keeps the problem for the caller."""
        decision = decide(HOUR, parse_interval("abc"), ZoneInfo("UTC"))
        assert decision.interval == 5
        assert decision.setting.problem is not None

    def test_naive_datetimes_are_refused(self) -> None:
        """A naive `now` is an error rather than a silent guess of its zone."""
        with pytest.raises(ValueError, match="timezone-aware"):
            decide(datetime(2026, 1, 1), parse_interval("1"), TEHRAN)


class TestNextDispatchTimes:
    """`next_dispatch_times` lists upcoming dispatch instants."""

    def test_next_five_for_interval_5(self) -> None:
        """From 10:03 UTC, interval 5 fires at :05, :10, :15, :20 and :25."""
        times = next_dispatch_times(HOUR + timedelta(minutes=3), 5, ZoneInfo("UTC"), 5)
        assert [t.minute for t in times] == [5, 10, 15, 20, 25]

    @given(st.integers(1, 5), st.datetimes(timezones=st.just(UTC)))
    def test_each_time_is_a_dispatch_minute_after_now(self, interval: int, now: datetime) -> None:
        """Every listed time is later than now and is a dispatch minute."""
        times = next_dispatch_times(now, interval, TEHRAN, 3)
        assert all(t > now for t in times)
        setting = parse_interval(str(interval))
        assert all(decide(t, setting, TEHRAN).dispatch for t in times)
