"""The one path every full sync takes: take (or hold) the unique lock, run, record, release.

The CLI's `sync`, the RQ job, the embedded mode's inline queue and the final
job of a fan-out all go through `SyncRun`, so the rules live here once:

- quota enforcement follows the usage sync (and its totals) in the same run;
- the summary of a run that finished is recorded as the last run's and folded
  into the run statistics (`run_stats`); a run that ends without finishing on
  its last try is counted there as failed;
- the lock is released when the run finishes, or when its last try fails;
  a failed try that will be retried keeps it, as Laravel's unique jobs do;
- a worker killed hard leaves the lock to expire by its time-to-live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import attrs

from usage_core.dispatch import JOB_NAME, JOB_TRIES, UNIQUE_FOR_SECONDS
from usage_core.enforcement.run import EnforcementReport, EnforceQuotas
from usage_core.errors import LockHeldError, UsageSyncError
from usage_core.log import ctx
from usage_core.ports import Lock, RunHistory, RunStatsStore
from usage_core.run_stats import RunStats, after_failure, after_run
from usage_core.summary import merge_summaries, part_sums
from usage_core.sync_all import Progress, SyncAllUsage

logger = logging.getLogger(__name__)

T = TypeVar("T")
Summary = dict[str, object]


@attrs.define
class SyncRun:
    """Runs full syncs under the unique lock and keeps the last run's summary."""

    sync: SyncAllUsage
    lock: Lock
    history: RunHistory
    enforce: EnforceQuotas | None = None
    stats: RunStatsStore | None = None

    def now(self, progress: Progress | None = None) -> Summary:
        """Take the lock and run one full sync; LockHeldError when a run holds it."""
        token = self._acquire()
        return self._locked(token, lambda: self._full(progress), last_try=True)

    def dispatched(self, token: str, *, last_try: bool) -> Summary:
        """One try of a dispatched run, whose dispatch took the lock as `token`.

        A job that starts after its lock passed to another run (one a dead
        worker abandoned and the queue brought back much later) does not run.
        """
        if not self.lock.hold(token, UNIQUE_FOR_SECONDS):
            logger.warning("%s not run: its unique lock now belongs to another run", JOB_NAME)
            return {"skipped": "the unique lock belongs to another run"}
        return self._locked(token, self._full, last_try=last_try)

    def enforce_now(self, *, dry_run: bool = False) -> EnforcementReport:
        """One enforcement pass without a sync; a real one holds the lock, a dry run needs none."""
        if self.enforce is None:
            msg = "enforcement is not configured"
            raise UsageSyncError(msg)
        if dry_run:
            return self.enforce(dry_run=True)
        token = self._acquire()
        try:
            return self.enforce()
        finally:
            self.lock.release(token)

    def with_tries(self, token: str, tries: int = JOB_TRIES) -> Summary:
        """A dispatched run tried up to `tries` times in this process, as a worker would."""
        for attempt in range(1, tries + 1):
            try:
                return self.dispatched(token, last_try=attempt >= tries)
            except Exception as exc:
                if attempt >= tries:
                    raise
                # A usage-sync error says what went wrong in its message; anything else is a bug.
                logger.warning(
                    "%s failed on try %s of %s; retrying: %s",
                    JOB_NAME,
                    attempt,
                    tries,
                    exc,
                    exc_info=not isinstance(exc, UsageSyncError),
                )
        msg = "tries must be at least 1"
        raise ValueError(msg)

    def hand_over(self, token: str, start: Callable[[], T], *, last_try: bool) -> T:
        """Start work that will release the lock itself (a fan-out's final job).

        The lock is released here only when starting fails on the last try.
        """
        try:
            return start()
        except BaseException:
            if last_try:
                self.lock.release(token)
            raise

    def finish_fan_out(
        self, token: str, parts: Sequence[Mapping[str, object]], *, last_try: bool
    ) -> Summary:
        """The final job of a fan-out: reseller totals, one summary from every part."""

        def finish() -> Summary:
            totals = self.sync.totals_of_parts(*part_sums(parts))
            return self._enforced(merge_summaries(parts, totals.as_dict()))

        return self._locked(token, finish, last_try=last_try)

    def _acquire(self) -> str:
        token = self.lock.acquire(UNIQUE_FOR_SECONDS)
        if token is None:
            raise LockHeldError(self.lock.remaining_seconds())
        return token

    def _full(self, progress: Progress | None = None) -> Summary:
        return self._enforced(self.sync(progress).as_dict())

    def _enforced(self, summary: Summary) -> Summary:
        """`summary` with the enforcement pass that follows the sync."""
        if self.enforce is None:
            return summary
        try:
            report = self.enforce().as_dict()
        except UsageSyncError as exc:
            if isinstance(exc, self.sync.abort_on):
                raise
            logger.error("Quota enforcement failed: %s", exc, extra=ctx(error=str(exc)))
            summary["enforcement"] = {"error": str(exc)}
            return summary
        report.pop("transitions", None)
        summary["enforcement"] = report
        return summary

    def _locked(self, token: str, body: Callable[[], Summary], *, last_try: bool) -> Summary:
        try:
            summary = body()
            self.history.record(summary)
            self._fold(lambda stats: after_run(stats, summary))
        except BaseException as exc:
            if last_try:
                self._fold_failure(exc)
                self.lock.release(token)
            raise
        self.lock.release(token)
        return summary

    def _fold(self, change: Callable[[RunStats], RunStats]) -> None:
        """Fold one run into the statistics; written under the run's lock, one run at a time."""
        if self.stats is not None:
            self.stats.save(change(RunStats.from_dict(self.stats.load())).as_dict())

    def _fold_failure(self, exc: BaseException) -> None:
        """Count a run that ended without finishing; a failure to do so never hides `exc`."""
        error = str(exc) or type(exc).__name__
        try:
            self._fold(lambda stats: after_failure(stats, self.sync.clock.now(), error))
        except Exception:
            logger.warning("Could not record the failed run in the run statistics", exc_info=True)
