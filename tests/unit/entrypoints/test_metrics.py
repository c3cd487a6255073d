"""The metrics read from the recorded run state, in Prometheus's text format."""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.fakes import InMemoryLock
from usage_core.run_stats import RunStats, after_run
from usage_entrypoints.metrics import RunStateCollector


class StoredStats:
    """A statistics document kept in memory, or a store that is down."""

    def __init__(self, document: dict[str, object] | None, *, down: bool = False) -> None:
        self.document = document
        self.down = down

    def load(self) -> dict[str, object] | None:
        if self.down:
            raise RedisConnectionError("Connection refused")
        return self.document

    def save(self, document: dict[str, object]) -> None:
        self.document = document


def scrape(
    stats: StoredStats, lock: InMemoryLock
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by name and sorted labels, as a scrape would parse them."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunStateCollector(stats, lock))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def two_runs() -> dict[str, object]:
    """The statistics of two runs: panel 3 answered, panel 4 was down in both."""
    stats = RunStats()
    for minute, duration in ((0, 3.0), (1, 45.0)):
        stats = after_run(
            stats,
            {
                "finished_at": f"1970-01-01T00:0{minute}:00+00:00",
                "duration_s": duration,
                "updated": 2,
                "failed": 5,
                "per_panel_type": {"marzban": {"updated": 2, "failed": 5}},
                "per_panel": {
                    "3": {"type": "marzban", "read": 2, "failed": 0},
                    "4": {"type": "marzban", "read": 0, "failed": 5},
                },
                "enforcement": {"remote_pending": 6},
            },
        )
    return stats.as_dict()


class TestRunStateCollector:
    """Each scrape reports what the recorded runs add up to, and the lock as it is now."""

    def test_metrics_of_two_runs(self) -> None:
        """Counters summed, the histogram bucketed, panels up or down, the outbox and the lock."""
        lock = InMemoryLock(lambda: 0.0)
        assert lock.acquire(300)
        samples = scrape(StoredStats(two_runs()), lock)
        assert (
            samples["usage_sync_configs_total", (("outcome", "updated"), ("panel_type", "marzban"))]
            == 4
        )
        assert (
            samples["usage_sync_configs_total", (("outcome", "failed"), ("panel_type", "marzban"))]
            == 10
        )
        assert samples["usage_sync_run_duration_seconds_count", ()] == 2
        assert samples["usage_sync_run_duration_seconds_sum", ()] == 48
        assert samples["usage_sync_run_duration_seconds_bucket", (("le", "5.0"),)] == 1
        assert samples["usage_sync_run_duration_seconds_bucket", (("le", "60.0"),)] == 2
        assert samples["usage_sync_last_success_timestamp_seconds", ()] == 60
        assert samples["usage_sync_panel_up", (("panel_id", "3"), ("panel_type", "marzban"))] == 1
        assert samples["usage_sync_panel_up", (("panel_id", "4"), ("panel_type", "marzban"))] == 0
        assert (
            samples[
                "usage_sync_panel_failure_streak", (("panel_id", "4"), ("panel_type", "marzban"))
            ]
            == 2
        )
        assert samples["usage_sync_remote_operations_pending", ()] == 6
        assert samples["usage_sync_lock_held", ()] == 1
        assert samples["usage_sync_state_up", ()] == 1

    def test_before_any_run(self) -> None:
        """No runs yet: zero counts, no success time, the lock free."""
        samples = scrape(StoredStats(None), InMemoryLock(lambda: 0.0))
        assert samples["usage_sync_run_duration_seconds_count", ()] == 0
        assert samples["usage_sync_last_success_timestamp_seconds", ()] == 0
        assert samples["usage_sync_lock_held", ()] == 0

    def test_an_unreadable_state_is_reported_not_raised(self) -> None:
        """Redis down: the scrape answers with `usage_sync_state_up 0` and nothing else."""
        samples = scrape(StoredStats(None, down=True), InMemoryLock(lambda: 0.0))
        assert samples == {("usage_sync_state_up", ()): 0}
