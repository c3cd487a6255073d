"""The system clock, the one place that reads the current time."""

from __future__ import annotations

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
