"""The schedule decision: whether a tick at a given instant dispatches the sync."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

import attrs

from usage_core.interval import IntervalSetting


@attrs.frozen
class ScheduleDecision:
    """What one scheduler tick decided.

    Attributes:
        setting: The interval setting the decision used.
        minute: The minute of the hour in the configured timezone.
        dispatch: True when the sync job is due at this minute.
        reason: A short human-readable explanation.
    """

    setting: IntervalSetting
    minute: int
    dispatch: bool
    reason: str

    @property
    def interval(self) -> int:
        """The effective interval in minutes."""
        return self.setting.minutes


def _local(now: datetime, tz: tzinfo) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    return now.astimezone(tz)


def decide(now: datetime, setting: IntervalSetting, tz: tzinfo) -> ScheduleDecision:
    """Decide whether the tick at `now` dispatches: `minute % interval == 0`.

    The minute is read in `tz`, as the original app read it in its own
    timezone; with a half-hour offset such as Asia/Tehran this changes which
    UTC minutes fire for intervals that do not divide 30.
    """
    minute = _local(now, tz).minute
    interval = setting.minutes
    if minute % interval == 0:
        reason = f"minute {minute} is a multiple of the {interval}-minute interval"
        return ScheduleDecision(setting, minute, dispatch=True, reason=reason)
    reason = f"minute {minute} is not a multiple of the {interval}-minute interval"
    return ScheduleDecision(setting, minute, dispatch=False, reason=reason)


def next_dispatch_times(now: datetime, interval: int, tz: tzinfo, count: int) -> list[datetime]:
    """Return the next `count` dispatch instants strictly after `now`, in `tz`."""
    local = _local(now, tz).replace(second=0, microsecond=0)
    found: list[datetime] = []
    candidate = local
    while len(found) < count:
        candidate = candidate + timedelta(minutes=1)
        # Step in UTC so that DST transitions neither repeat nor skip minutes.
        candidate = candidate.astimezone(tz)
        if candidate.minute % interval == 0:
            found.append(candidate)
    return found
