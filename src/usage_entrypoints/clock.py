"""The system clock, the one place that reads the current time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo


class SystemClock:
    """The current time, aware, and as the app stores timestamps."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz

    def now(self) -> datetime:
        """The current instant in the configured timezone."""
        return datetime.now(UTC).astimezone(self._tz)

    def local_naive(self) -> datetime:
        """The current wall-clock time without a zone, as Laravel stores timestamps."""
        return self.now().replace(tzinfo=None, microsecond=0)


class SystemPace:
    """Pacing on the real clock: `time.monotonic` and `time.sleep`."""

    def monotonic(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        if seconds > 0:
            time.sleep(seconds)
