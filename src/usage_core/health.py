"""Is the sync healthy? Three checks over the run statistics, the clock and the unique lock.

- **Fresh:** the last successful run finished less than twice the interval
  plus the job timeout ago (one missed dispatch is tolerated, two are not).
- **Lock not stuck:** the unique lock is not held while no run has finished
  (successfully or not) for longer than the job timeout plus the lock's
  time-to-live: a run that holds it that long is hung, or its lock was left
  behind.
- **Panels answer:** no panel has failed `max_panel_failures` runs in a row.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from usage_core.dispatch import JOB_TIMEOUT_SECONDS, UNIQUE_FOR_SECONDS
from usage_core.run_stats import RunStats, stamp_seconds

DEFAULT_MAX_PANEL_FAILURES = 3
STUCK_LOCK_AFTER_SECONDS = JOB_TIMEOUT_SECONDS + UNIQUE_FOR_SECONDS


def stale_after_seconds(interval_minutes: int, job_timeout_s: int = JOB_TIMEOUT_SECONDS) -> int:
    """How old the last success may be: twice the interval plus the job timeout."""
    return 2 * interval_minutes * 60 + job_timeout_s


@attrs.frozen
class HealthReport:
    """The verdict and the reasons it is not healthy (empty when it is)."""

    healthy: bool
    reasons: tuple[str, ...]
    last_success_at: str | None
    last_success_age_s: float | None
    stale_after_s: int
    lock_held: bool
    failing_panels: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {
            "healthy": self.healthy,
            "reasons": list(self.reasons),
            "last_success_at": self.last_success_at,
            "last_success_age_s": (
                None if self.last_success_age_s is None else round(self.last_success_age_s, 1)
            ),
            "stale_after_s": self.stale_after_s,
            "lock_held": self.lock_held,
            "failing_panels": self.failing_panels,
        }


def assess(
    stats: RunStats,
    now: datetime,
    *,
    interval_minutes: int,
    lock_held: bool,
    max_panel_failures: int = DEFAULT_MAX_PANEL_FAILURES,
) -> HealthReport:
    """Judge `stats` at `now` (timezone-aware), with the interval in force and the lock's state."""
    stale_after = stale_after_seconds(interval_minutes)
    reasons = []
    success_age = _age(stats.last_success_at, now)
    last_error = _last_error(stats, success_age, now)
    if success_age is None:
        reasons.append("no successful run recorded yet" + last_error)
    elif success_age > stale_after:
        reasons.append(
            f"the last successful run finished {success_age:.0f} s ago "
            f"(allowed: {stale_after} s, twice the {interval_minutes}-minute interval "
            f"plus the {JOB_TIMEOUT_SECONDS} s job timeout){last_error}"
        )
    ages = (_age(stats.last_run_at, now), _age(stats.last_failure_at, now))
    ended = [age for age in ages if age is not None]
    last_end = min(ended, default=None)
    if lock_held and last_end is not None and last_end > STUCK_LOCK_AFTER_SECONDS:
        reasons.append(
            f"the unique lock is held but no run has ended for {last_end:.0f} s: "
            "a run is hung or its lock was left behind"
        )
    failing = {
        panel_id: streak.failure_streak
        for panel_id, streak in sorted(stats.panels.items())
        if streak.failure_streak >= max_panel_failures
    }
    reasons += [
        f"panel {panel_id} ({stats.panels[panel_id].panel_type}) failed {runs} "
        f"run{'' if runs == 1 else 's'} in a row"
        for panel_id, runs in failing.items()
    ]
    return HealthReport(
        healthy=not reasons,
        reasons=tuple(reasons),
        last_success_at=stats.last_success_at,
        last_success_age_s=success_age,
        stale_after_s=stale_after,
        lock_held=lock_held,
        failing_panels=failing,
    )


def _last_error(stats: RunStats, success_age: float | None, now: datetime) -> str:
    """The "; the last run failed: ..." suffix when a run failed after the last success."""
    failure_age = _age(stats.last_failure_at, now)
    if not stats.last_error or failure_age is None:
        return ""
    if success_age is not None and failure_age >= success_age:
        return ""
    return f"; the last run failed: {stats.last_error}"


def _age(stamp: str | None, now: datetime) -> float | None:
    """Seconds from the ISO 8601 `stamp` to `now`, or None without a usable stamp."""
    then = stamp_seconds(stamp)
    return None if then is None else now.timestamp() - then
