"""`SyncRun`: lock, run, record, release, the same for every way a sync is started."""

import logging
from datetime import UTC, datetime

import attrs
import pytest

from tests.fakes import (
    FixedClock,
    InMemoryConfigs,
    InMemoryLock,
    InMemoryPanels,
    InMemoryResellers,
    ScriptedPanelClients,
)
from usage_core.errors import DatabaseUnavailableError, LockHeldError
from usage_core.model import ConfigFilter, SyncItem
from usage_core.run import SyncRun
from usage_core.run_stats import RunStats
from usage_core.summary import PART_SUMS_KEY, part_sums
from usage_core.sync_all import SyncAllUsage


@attrs.define
class Seconds:
    """A settable clock for the fake lock."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class MemoryHistory:
    """Run summaries kept in a list."""

    def __init__(self) -> None:
        self.summaries: list[dict[str, object]] = []

    def record(self, summary: dict[str, object]) -> None:
        self.summaries.append(summary)

    def last(self) -> dict[str, object] | None:
        return self.summaries[-1] if self.summaries else None


class MemoryStats:
    """The run statistics document kept in memory."""

    def __init__(self) -> None:
        self.document: dict[str, object] | None = None

    def load(self) -> dict[str, object] | None:
        return self.document

    def save(self, document: dict[str, object]) -> None:
        self.document = document


class BrokenConfigs(InMemoryConfigs):
    """A configs table that fails every read of a run's work."""

    def synced_items(self, only: ConfigFilter | None = None) -> list[SyncItem]:
        raise RuntimeError("the database went away")


class DownConfigs(InMemoryConfigs):
    """A configs table whose database cannot be reached."""

    def synced_items(self, only: ConfigFilter | None = None) -> list[SyncItem]:
        raise DatabaseUnavailableError("cannot connect to the server: refused")


def sync_run(
    clock: Seconds, *, broken: bool = False, down: bool = False
) -> tuple[SyncRun, InMemoryLock, MemoryHistory]:
    """A run over an empty world (or one whose reads fail), with a fake lock and history."""
    configs = BrokenConfigs() if broken else DownConfigs() if down else InMemoryConfigs()
    resellers = InMemoryResellers(configs, {1: 0}, {}, [1])
    sync = SyncAllUsage(
        configs,
        resellers,
        InMemoryPanels(),
        ScriptedPanelClients({}),
        FixedClock(datetime(2026, 11, 24, tzinfo=UTC)),
    )
    lock, history = InMemoryLock(clock), MemoryHistory()
    return SyncRun(sync, lock, history), lock, history


class TestSyncRun:
    """Every run records its summary and releases the lock by Laravel's rules."""

    def test_now_takes_runs_records_and_releases(self) -> None:
        """`now` takes the lock, records the summary and frees the lock."""
        run, lock, history = sync_run(Seconds())
        summary = run.now()
        assert history.summaries == [summary]
        assert summary["resellers"] == 1
        assert lock.remaining_seconds() is None

    def test_now_refuses_while_the_lock_is_held(self) -> None:
        """A run asked for while a dispatched one holds the lock is refused, saying for how long."""
        run, lock, history = sync_run(Seconds())
        assert lock.acquire(300)
        with pytest.raises(LockHeldError, match="300 s") as raised:
            run.now()
        assert raised.value.remaining_seconds == 300
        assert history.summaries == []

    def test_success_releases(self) -> None:
        """A dispatched run that finishes releases the lock it was dispatched with."""
        run, lock, history = sync_run(Seconds())
        token = lock.acquire(300)
        assert token
        assert run.dispatched(token, last_try=False)["configs"] == 0
        assert lock.remaining_seconds() is None
        assert len(history.summaries) == 1

    def test_failed_first_try_keeps_the_lock(self) -> None:
        """A failure with a retry left keeps the lock for the retry; the last one frees it."""
        run, lock, history = sync_run(Seconds(), broken=True)
        token = lock.acquire(300)
        assert token
        with pytest.raises(RuntimeError):
            run.dispatched(token, last_try=False)
        assert lock.remaining_seconds() == 300
        with pytest.raises(RuntimeError):
            run.dispatched(token, last_try=True)
        assert lock.remaining_seconds() is None
        assert history.summaries == []

    def test_only_the_owner_releases(self) -> None:
        """A job whose lock expired and was retaken cannot release the new owner's lock."""
        clock = Seconds()
        run, lock, _ = sync_run(clock)
        old = lock.acquire(300)
        clock.now = 301
        new = lock.acquire(300)
        assert old
        assert new
        assert old != new
        run.dispatched(old, last_try=True)
        assert lock.remaining_seconds() is not None

    def test_job_whose_lock_passed_to_another_run_does_nothing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A job holding a stale token neither runs, records, nor touches the new owner's lock."""
        clock = Seconds()
        # Reads that fail: had the job run, it would raise.
        run, lock, history = sync_run(clock, broken=True)
        old = lock.acquire(300)
        clock.now = 301
        new = lock.acquire(300)
        assert old
        assert new
        clock.now = 350
        with caplog.at_level(logging.WARNING, logger="usage_core.run"):
            summary = run.dispatched(old, last_try=True)
        assert summary == {"skipped": "the unique lock belongs to another run"}
        assert history.summaries == []
        assert (lock.token, lock.remaining_seconds()) == (new, 251)
        assert "SyncResellerUsageJob not run" in caplog.text

    def test_job_holding_its_lock_renews_it_for_the_run(self) -> None:
        """The owner's token renews the lock's 300 s before running, kept for a retry."""
        clock = Seconds()
        run, lock, history = sync_run(clock, broken=True)
        token = lock.acquire(300)
        assert token
        clock.now = 250
        with pytest.raises(RuntimeError):
            run.dispatched(token, last_try=False)
        assert (lock.token, lock.remaining_seconds()) == (token, 300)
        assert history.summaries == []

    def test_job_whose_lock_expired_unclaimed_retakes_it_and_runs(self) -> None:
        """A job brought back after its lock expired, with no run in between, runs and frees it."""
        clock = Seconds()
        run, lock, history = sync_run(clock)
        token = lock.acquire(300)
        assert token
        clock.now = 1000
        assert lock.remaining_seconds() is None
        assert run.dispatched(token, last_try=False)["configs"] == 0
        assert len(history.summaries) == 1
        assert lock.remaining_seconds() is None
        assert lock.acquire(300) is not None

    def test_with_tries_retries_once_then_gives_up(self) -> None:
        """Inline, a failing run is tried twice, and the lock is freed after the second."""
        run, lock, _ = sync_run(Seconds(), broken=True)
        token = lock.acquire(300)
        assert token
        with pytest.raises(RuntimeError):
            run.with_tries(token)
        assert lock.remaining_seconds() is None

    def test_a_database_down_retry_is_one_line(self, caplog: pytest.LogCaptureFixture) -> None:
        """A try that fails with a usage-sync error logs its reason without a traceback."""
        run, lock, _ = sync_run(Seconds(), down=True)
        token = lock.acquire(300)
        assert token
        with caplog.at_level(logging.WARNING), pytest.raises(DatabaseUnavailableError):
            run.with_tries(token)
        [retry] = [r for r in caplog.records if "retrying" in r.getMessage()]
        assert retry.getMessage().endswith("retrying: cannot connect to the server: refused")
        assert not retry.exc_info

    def test_hand_over_keeps_the_lock_for_the_final_job(self) -> None:
        """Starting a fan-out keeps the lock; failing to start it on the last try frees it."""
        run, lock, _ = sync_run(Seconds())
        token = lock.acquire(300)
        assert token
        assert run.hand_over(token, lambda: "queued", last_try=True) == "queued"
        assert lock.remaining_seconds() == 300

        def fail() -> str:
            raise ConnectionError

        with pytest.raises(ConnectionError):
            run.hand_over(token, fail, last_try=False)
        assert lock.remaining_seconds() == 300
        with pytest.raises(ConnectionError):
            run.hand_over(token, fail, last_try=True)
        assert lock.remaining_seconds() is None

    def test_finish_fan_out_merges_and_releases(self) -> None:
        """The final job sums the panel jobs' counts, records them, and frees the lock."""
        run, lock, history = sync_run(Seconds())
        token = lock.acquire(300)
        assert token
        parts = [{"configs": 2, "updated": 2}, {"configs": 3, "failed": 1}]
        summary = run.finish_fan_out(token, parts, last_try=True)
        assert (summary["configs"], summary["updated"], summary["failed"]) == (5, 2, 1)
        assert summary["panels"] == 2
        assert history.summaries == [summary]
        assert lock.remaining_seconds() is None

    def test_finish_fan_out_totals_from_the_panel_jobs_sums(self) -> None:
        """The sums of the jobs that gave them are used; a skipped job's panel is read again."""
        run, lock, _ = sync_run(Seconds())
        resellers = run.sync.resellers
        assert isinstance(resellers, InMemoryResellers)
        token = lock.acquire(300)
        assert token
        parts = [
            {"panel_id": 1, "configs": 1, PART_SUMS_KEY: {1: 700}},
            {"panel_id": 2, "configs": 1, PART_SUMS_KEY: {1: 42}},
            {"panel_id": 3, "not_run": "the panel's lock is held"},
        ]
        summary = run.finish_fan_out(token, parts, last_try=True)
        assert resellers.used[1] == 742
        assert summary["resellers_updated"] == 1
        assert PART_SUMS_KEY not in summary


class TestPartSums:
    """`part_sums` adds up the panel jobs' sums and names the panels they cover."""

    def test_sums_are_added_and_unusable_parts_cover_nothing(self) -> None:
        """Two jobs' sums are added; a skipped job and a malformed part cover no panel."""
        parts: list[dict[str, object]] = [
            {"panel_id": 1, PART_SUMS_KEY: {1: 5, 2: 1}},
            {"panel_id": 2, PART_SUMS_KEY: {1: 3}},
            {"panel_id": 3, "not_run": "the panel's lock is held"},
            {"panel_id": 4, PART_SUMS_KEY: {1: "lots"}},
            {"panel_id": "5", PART_SUMS_KEY: {1: 9}},
        ]
        assert part_sums(parts) == ({1: 8, 2: 1}, frozenset({1, 2}))


class TestRunStatistics:
    """Every finished run, and every run that fails on its last try, is folded into the stats."""

    def test_finished_runs_are_counted(self) -> None:
        """Two runs: two finished runs, the last success at the summary's end."""
        run, _, _ = sync_run(Seconds())
        stats = MemoryStats()
        run.stats = stats
        run.now()
        summary = run.now()
        folded = RunStats.from_dict(stats.document)
        assert (folded.runs, folded.runs_failed) == (2, 0)
        assert folded.last_success_at == summary["finished_at"]

    def test_a_fan_out_folds_every_panel_jobs_reads(self) -> None:
        """The final job of a fan-out moves the streak of each panel its jobs read."""
        run, lock, _ = sync_run(Seconds())
        stats = MemoryStats()
        run.stats = stats
        token = lock.acquire(300)
        assert token
        parts = [
            {"updated": 2, "per_panel": {"1": {"type": "xui", "read": 2, "failed": 0}}},
            {"failed": 3, "per_panel": {"2": {"type": "marzban", "read": 0, "failed": 3}}},
        ]
        run.finish_fan_out(token, parts, last_try=True)
        panels = RunStats.from_dict(stats.document).panels
        assert (panels["1"].up, panels["1"].failure_streak) == (True, 0)
        assert (panels["2"].up, panels["2"].failure_streak) == (False, 1)

    def test_only_the_last_failed_try_is_counted(self) -> None:
        """A try that will be retried is not a failed run; the last one is, with its error."""
        run, lock, _ = sync_run(Seconds(), broken=True)
        stats = MemoryStats()
        run.stats = stats
        token = lock.acquire(300)
        assert token
        with pytest.raises(RuntimeError):
            run.dispatched(token, last_try=False)
        assert stats.document is None
        with pytest.raises(RuntimeError):
            run.dispatched(token, last_try=True)
        folded = RunStats.from_dict(stats.document)
        assert (folded.runs, folded.runs_failed) == (0, 1)
        assert folded.last_error == "the database went away"
        assert folded.last_failure_at == "2026-11-24T00:00:00+00:00"
