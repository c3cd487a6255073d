"""The scheduler tick and the unique dispatch of the sync job.

Uniqueness follows Laravel's `ShouldBeUnique` with `$uniqueFor = 300`: the
lock is taken when the job is dispatched and a dispatch while it is held is
skipped; the run releases it (see `usage_core.run`), only by the token that
took it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo

import attrs

from usage_core.interval import INTERVAL_SETTING_KEY, IntervalSetting, parse_interval
from usage_core.log import ctx
from usage_core.ports import DispatchSlots, JobQueue, Lock, SettingsRepository
from usage_core.schedule import ScheduleDecision, decide

logger = logging.getLogger(__name__)

JOB_NAME = "SyncResellerUsageJob"
UNIQUE_FOR_SECONDS = 300
JOB_TRIES = 2
JOB_TIMEOUT_SECONDS = 600
# How long a claimed minute stays claimed: far longer than any clock skew between tickers.
SLOT_TTL_SECONDS = 3600


@attrs.frozen
class DispatchOutcome:
    """Whether a dispatch queued (or ran) the job, and why."""

    dispatched: bool
    reason: str
    job_id: str | None = None


def dispatch_unique(lock: Lock, queue: JobQueue) -> DispatchOutcome:
    """Take the unique lock and queue the job; skip when the lock is held."""
    token = lock.acquire(UNIQUE_FOR_SECONDS)
    if token is None:
        remaining = lock.remaining_seconds()
        left = f"{remaining:.0f} s" if remaining is not None else "an unknown time"
        logger.info(
            "%s not dispatched: a previous dispatch holds its unique lock (%s left)",
            JOB_NAME,
            left,
            extra=ctx(lock_remaining_seconds=remaining),
        )
        return DispatchOutcome(False, f"skipped: the unique lock is held ({left} left)")
    try:
        job_id = queue.enqueue_sync(token)
    except BaseException:
        # A job that never got queued must not block the next dispatch.
        lock.release(token)
        raise
    return DispatchOutcome(True, f"dispatched job {job_id}", job_id)


@attrs.frozen
class TickResult:
    """What one tick decided and did."""

    decision: ScheduleDecision
    dispatched: bool
    reason: str
    job_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The `tick --json` document."""
        return {
            "interval": self.decision.interval,
            "raw": self.decision.setting.raw,
            "minute": self.decision.minute,
            "dispatch": self.decision.dispatch,
            "dispatched": self.dispatched,
            "reason": self.reason,
        }


def read_interval(settings: SettingsRepository) -> IntervalSetting:
    """The interval setting, with a warning naming a value that cannot be used."""
    setting = parse_interval(settings.get(INTERVAL_SETTING_KEY))
    if setting.problem:
        logger.warning(
            "Invalid %s value %r: %s; using the default of %s minutes",
            INTERVAL_SETTING_KEY,
            setting.raw,
            setting.problem,
            setting.minutes,
            extra=ctx(raw=setting.raw),
        )
    return setting


def slot_of(now: datetime) -> str:
    """The minute a tick decides for, as a key: `YYYYMMDDHHMM` in UTC."""
    return now.astimezone(UTC).strftime("%Y%m%d%H%M")


@attrs.define
class SchedulerTick:
    """One scheduler tick: read the interval, decide, and dispatch uniquely.

    However many ticks decide for one minute (several schedulers, a late tick
    after a fast run), the minute is claimed once: only the first dispatches.
    """

    settings: SettingsRepository
    lock: Lock
    queue: JobQueue
    tz: tzinfo
    slots: DispatchSlots

    def __call__(self, now: datetime, *, dry_run: bool = False) -> TickResult:
        """Decide for the minute of `now`; dispatch unless `dry_run`."""
        decision = decide(now, read_interval(self.settings), self.tz)
        if not decision.dispatch:
            return TickResult(decision, False, decision.reason)
        if dry_run:
            return TickResult(decision, False, f"dry run: {decision.reason}")
        slot = slot_of(now)
        if not self.slots.claim(slot, SLOT_TTL_SECONDS):
            logger.info(
                "%s not dispatched: minute %s was dispatched already",
                JOB_NAME,
                slot,
                extra=ctx(slot=slot),
            )
            return TickResult(decision, False, f"skipped: minute {slot} was dispatched already")
        unit = "minute" if decision.interval == 1 else "minutes"
        logger.info("Scheduling %s (interval: %s %s)", JOB_NAME, decision.interval, unit)
        outcome = dispatch_unique(self.lock, self.queue)
        return TickResult(decision, outcome.dispatched, outcome.reason, outcome.job_id)
