"""The health verdict over the run statistics, on a fake clock."""

from datetime import UTC, datetime, timedelta

import pytest

from usage_core.health import STUCK_LOCK_AFTER_SECONDS, assess, stale_after_seconds
from usage_core.run_stats import RunStats, after_failure, after_run

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def finished(
    at: datetime, per_panel: dict[str, tuple[int, int]] | None = None
) -> dict[str, object]:
    """A summary of a run that finished at `at` with one config updated."""
    return {
        "finished_at": at.isoformat(),
        "duration_s": 1.0,
        "updated": 1,
        "failed": 0,
        "per_panel": {
            pid: {"type": "xui", "read": read, "failed": bad}
            for pid, (read, bad) in (per_panel or {}).items()
        },
    }


def runs_every_minute(count: int) -> RunStats:
    """Statistics of `count` successful runs, one a minute from START."""
    stats = RunStats()
    for minute in range(count):
        stats = after_run(stats, finished(START + timedelta(minutes=minute)))
    return stats


class TestHealth:
    """Healthy while runs keep succeeding; red, with the reason, when they stop or a panel fails."""

    def test_healthy_while_runs_go_on(self) -> None:
        """A run a minute ago, lock free: healthy, no reasons."""
        stats = runs_every_minute(10)
        report = assess(stats, START + timedelta(minutes=10), interval_minutes=1, lock_held=False)
        assert report.healthy
        assert report.reasons == ()
        assert report.last_success_age_s == 60

    def test_red_when_runs_stop(self) -> None:
        """The clock moves on without runs: healthy up to 2 x interval + job timeout, then red."""
        stats = runs_every_minute(3)
        last = START + timedelta(minutes=2)
        limit = stale_after_seconds(5)
        assert limit == 2 * 300 + 600
        at_limit = assess(
            stats, last + timedelta(seconds=limit), interval_minutes=5, lock_held=False
        )
        assert at_limit.healthy
        report = assess(
            stats, last + timedelta(seconds=limit + 1), interval_minutes=5, lock_held=False
        )
        assert not report.healthy
        assert report.reasons == (
            "the last successful run finished 1201 s ago (allowed: 1200 s, twice the 5-minute "
            "interval plus the 600 s job timeout)",
        )

    def test_red_before_any_run(self) -> None:
        """Nothing recorded yet: red, saying so."""
        report = assess(RunStats(), START, interval_minutes=1, lock_held=False)
        assert report.reasons == ("no successful run recorded yet",)

    def test_the_reason_names_the_last_failure(self) -> None:
        """Runs that fail after the last success are named in the stale reason."""
        stats = after_failure(
            runs_every_minute(1), START + timedelta(minutes=5), "database unavailable: refused"
        )
        report = assess(stats, START + timedelta(hours=1), interval_minutes=1, lock_held=False)
        assert report.reasons[0].endswith("; the last run failed: database unavailable: refused")

    def test_a_lock_held_while_no_run_ends_is_stuck(self) -> None:
        """Held for longer than the job timeout plus the lock's TTL since the last run: stuck."""
        stats = runs_every_minute(1)
        soon = START + timedelta(seconds=STUCK_LOCK_AFTER_SECONDS)
        assert assess(stats, soon, interval_minutes=5, lock_held=True).healthy
        later = soon + timedelta(seconds=1)
        report = assess(stats, later, interval_minutes=5, lock_held=True)
        assert report.reasons == (
            "the unique lock is held but no run has ended for 901 s: "
            "a run is hung or its lock was left behind",
        )
        assert assess(stats, later, interval_minutes=5, lock_held=False).healthy

    @pytest.mark.parametrize(("failed_runs", "healthy"), [(2, True), (3, False)])
    def test_a_panel_failing_n_runs_in_a_row(self, failed_runs: int, healthy: bool) -> None:
        """Panel 7 fails runs in a row while panel 8 answers: red from the third run."""
        stats = RunStats()
        for minute in range(failed_runs):
            at = START + timedelta(minutes=minute)
            stats = after_run(stats, finished(at, {"7": (0, 3), "8": (2, 0)}))
        now = START + timedelta(minutes=failed_runs)
        report = assess(stats, now, interval_minutes=1, lock_held=False, max_panel_failures=3)
        assert report.healthy is healthy
        if not healthy:
            assert report.reasons == ("panel 7 (xui) failed 3 runs in a row",)
            assert report.failing_panels == {"7": 3}

    def test_the_panel_threshold_is_configurable(self) -> None:
        """With a threshold of 1, one failed run is enough."""
        stats = after_run(RunStats(), finished(START, {"7": (0, 1)}))
        report = assess(stats, START, interval_minutes=1, lock_held=False, max_panel_failures=1)
        assert report.failing_panels == {"7": 1}
