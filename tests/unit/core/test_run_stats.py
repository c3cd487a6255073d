"""The run statistics: runs, durations and config outcomes added up, each panel's streak."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from usage_core.run_stats import (
    DURATION_BUCKETS,
    RunStats,
    after_failure,
    after_run,
    run_succeeded,
    stamp_seconds,
)

T0 = "2026-11-26T10:00:00+00:00"


def summary(
    finished_at: str = T0,
    *,
    duration_s: float = 2.0,
    per_panel: dict[str, tuple[int, int]] | None = None,
    updated: int = 1,
    failed: int = 0,
    pending: int | None = None,
) -> dict[str, object]:
    """A run summary as `SyncSummary.as_dict` writes it, with `per_panel` as (read, failed)."""
    document: dict[str, object] = {
        "finished_at": finished_at,
        "duration_s": duration_s,
        "updated": updated,
        "unchanged": 0,
        "failed": failed,
        "per_panel_type": {"marzban": {"updated": updated, "failed": failed}},
        "per_panel": {
            pid: {"type": "marzban", "read": read, "failed": bad}
            for pid, (read, bad) in (per_panel or {}).items()
        },
    }
    if pending is not None:
        document["enforcement"] = {"remote_pending": pending}
    return document


class TestAfterRun:
    """Each finished run adds to the counters and moves each panel's streak."""

    def test_streaks_grow_while_a_panel_fails_and_reset_when_it_answers(self) -> None:
        """Panel 2 fails three runs in a row, then answers; panel 1 answers throughout."""
        stats = RunStats()
        for minute in range(3):
            at = f"2026-11-26T10:0{minute}:00+00:00"
            stats = after_run(stats, summary(at, per_panel={"1": (5, 0), "2": (0, 4)}))
        assert stats.panels["2"].failure_streak == 3
        assert not stats.panels["2"].up
        assert stats.panels["2"].last_success_at is None
        assert stats.panels["2"].last_failure_at == "2026-11-26T10:02:00+00:00"
        assert (stats.panels["1"].failure_streak, stats.panels["1"].up) == (0, True)
        stats = after_run(
            stats, summary("2026-11-26T10:03:00+00:00", per_panel={"1": (5, 0), "2": (1, 3)})
        )
        assert (stats.panels["2"].failure_streak, stats.panels["2"].up) == (0, True)
        assert stats.panels["2"].last_success_at == "2026-11-26T10:03:00+00:00"
        assert stats.panels["2"].last_failure_at == "2026-11-26T10:02:00+00:00"

    def test_a_panel_no_run_reads_any_more_is_forgotten(self) -> None:
        """Panel 2 failed three runs, then lost its configs: its streak goes with it."""
        stats = RunStats()
        for minute in range(3):
            at = f"2026-11-26T10:0{minute}:00+00:00"
            stats = after_run(stats, summary(at, per_panel={"1": (5, 0), "2": (0, 4)}))
        stats = after_run(stats, summary("2026-11-26T10:03:00+00:00", per_panel={"1": (5, 0)}))
        assert set(stats.panels) == {"1"}
        assert stats.panels["1"].last_success_at == "2026-11-26T10:03:00+00:00"

    def test_a_summary_without_panel_reads_keeps_the_streaks(self) -> None:
        """A summary written before per-panel reads existed leaves the streaks alone."""
        stats = after_run(RunStats(), summary(per_panel={"2": (0, 4)}))
        older = summary("2026-11-26T10:05:00+00:00")
        del older["per_panel"]
        assert after_run(stats, older).panels == stats.panels

    def test_counters_add_up_and_the_histogram_buckets_durations(self) -> None:
        """Two runs: outcomes summed per panel type, durations in their buckets and the sum."""
        stats = after_run(RunStats(), summary(duration_s=0.5, updated=3, failed=1))
        stats = after_run(stats, summary(duration_s=700, updated=2))
        assert stats.runs == 2
        assert stats.configs == {"marzban": {"updated": 5, "failed": 1}}
        assert stats.duration_counts[0] == 1
        assert stats.duration_counts[len(DURATION_BUCKETS)] == 1
        assert stats.duration_sum_s == 700.5
        assert stats.last_duration_s == 700

    def test_a_run_where_every_config_failed_is_no_success(self) -> None:
        """Every config failed: counted as a failed run; the last success stays where it was."""
        stats = after_run(RunStats(), summary(T0))
        stats = after_run(stats, summary("2026-11-26T10:05:00+00:00", updated=0, failed=7))
        assert stats.last_success_at == T0
        assert stats.last_run_at == "2026-11-26T10:05:00+00:00"
        assert (stats.runs, stats.runs_failed) == (2, 1)
        assert stats.last_error == "every config failed"

    def test_nothing_to_do_is_a_success(self) -> None:
        """A run with no configs at all failed nothing, so it succeeded."""
        assert run_succeeded({"updated": 0, "unchanged": 0, "failed": 0})

    def test_remote_pending_follows_the_last_enforcement_report(self) -> None:
        """The outbox count is the last enforcement report's; a run without one keeps it."""
        stats = after_run(RunStats(), summary(pending=4))
        assert stats.remote_pending == 4
        assert after_run(stats, summary()).remote_pending == 4


class TestAfterFailure:
    """A run that ended without finishing counts as failed and keeps its error."""

    def test_failure_is_counted_without_touching_success(self) -> None:
        """The last success and the finished-run count stay; the error is cut to 200 chars."""
        stats = after_run(RunStats(), summary(T0))
        at = datetime(2026, 11, 26, 10, 5, tzinfo=UTC)
        stats = after_failure(stats, at, "database unavailable " * 20)
        assert (stats.runs, stats.runs_failed, stats.last_success_at) == (1, 1, T0)
        assert stats.last_failure_at == at.isoformat()
        assert stats.last_error is not None
        assert len(stats.last_error) == 200


class TestDocument:
    """The statistics survive their JSON form, and garbage reads as zero."""

    @given(
        st.lists(
            st.tuples(
                st.floats(0, 10_000),
                st.dictionaries(
                    st.sampled_from(["1", "2", "3"]),
                    st.tuples(st.integers(0, 9), st.integers(0, 9)),
                ),
            ),
            max_size=6,
        )
    )
    def test_round_trip(self, runs: list[tuple[float, dict[str, tuple[int, int]]]]) -> None:
        """`from_dict(as_dict())` gives back the same statistics after any runs."""
        stats = RunStats()
        for duration, per_panel in runs:
            stats = after_run(stats, summary(duration_s=duration, per_panel=per_panel))
        assert RunStats.from_dict(stats.as_dict()) == stats

    def test_garbage_reads_as_zero(self) -> None:
        """Wrong types and a short histogram are ignored rather than trusted."""
        stats = RunStats.from_dict(
            {"runs": "many", "duration_counts": [1], "panels": {"1": "up"}, "configs": []}
        )
        assert stats == RunStats()

    def test_stamps_without_a_zone_are_utc(self) -> None:
        """A naive stamp is read as UTC; an unreadable one is None."""
        assert stamp_seconds("1970-01-01T00:01:00") == 60
        assert stamp_seconds("1970-01-01T01:01:00+01:00") == 60
        assert stamp_seconds("yesterday") is None
