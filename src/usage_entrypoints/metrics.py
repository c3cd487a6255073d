"""Prometheus metrics, computed at each scrape from the recorded run state.

Nothing is counted in the process that serves them: every run folds its
summary into the run statistics (a Redis key, or a file in the state
directory; see `usage_core.run_stats`), and each scrape reads those and the
unique lock. So a worker's work horse, the `scheduler` process serving the
endpoint and the one-shot `usage-sync metrics` all show the same numbers, and
the counters survive restarts of every process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from usage_adapters.files import replace_file
from usage_core.errors import ConfigurationError, UsageSyncError
from usage_core.ports import Lock, RunStatsStore
from usage_core.run_stats import DURATION_BUCKETS, RunStats, stamp_seconds
from usage_entrypoints.rq_runtime import REDIS_DOWN

if TYPE_CHECKING:
    from usage_entrypoints.container import Container

logger = logging.getLogger(__name__)


class RunStateCollector(Collector):
    """Reads the run statistics and the lock at each collection."""

    def __init__(self, stats: RunStatsStore, lock: Lock) -> None:
        self._stats = stats
        self._lock = lock

    def collect(self) -> Iterator[Metric]:
        """The metrics of the recorded state; only `usage_sync_state_up 0` when it is unreadable."""
        state_up = GaugeMetricFamily(
            "usage_sync_state_up", "1 when the recorded run state (Redis or files) could be read."
        )
        try:
            stats = RunStats.from_dict(self._stats.load())
            lock_held = self._lock.remaining_seconds() is not None
        except (*REDIS_DOWN, UsageSyncError) as exc:  # a scrape reports an outage, not a 500
            logger.warning("Metrics: cannot read the run state: %s", type(exc).__name__)
            state_up.add_metric([], 0)
            yield state_up
            return
        state_up.add_metric([], 1)
        yield state_up
        yield from _run_metrics(stats)
        lock = GaugeMetricFamily(
            "usage_sync_lock_held", "1 while the sync's unique lock is held (a run queued or on)."
        )
        lock.add_metric([], int(lock_held))
        yield lock


def _run_metrics(stats: RunStats) -> Iterator[Metric]:
    cumulative, buckets = 0, []
    for bound, count in zip((*DURATION_BUCKETS, float("inf")), stats.duration_counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
    duration = HistogramMetricFamily(
        "usage_sync_run_duration_seconds", "Duration of the finished full syncs."
    )
    duration.add_metric([], buckets, sum_value=stats.duration_sum_s)
    yield duration
    configs = CounterMetricFamily(
        "usage_sync_configs",
        "Configs handled by full syncs, by panel type and outcome.",
        labels=["panel_type", "outcome"],
    )
    for panel_type, outcomes in sorted(stats.configs.items()):
        for outcome, n in sorted(outcomes.items()):
            configs.add_metric([panel_type, outcome], n)
    yield configs
    failed = CounterMetricFamily(
        "usage_sync_runs_failed",
        "Runs that failed: ended without finishing, or every config they tried failed.",
    )
    failed.add_metric([], stats.runs_failed)
    yield failed
    yield GaugeMetricFamily(
        "usage_sync_last_success_timestamp_seconds",
        "Unix time the last successful run finished (0: none yet).",
        value=stamp_seconds(stats.last_success_at) or 0.0,
    )
    up = GaugeMetricFamily(
        "usage_sync_panel_up",
        "1 when the panel answered in the last run that read it (at least one user read).",
        labels=["panel_id", "panel_type"],
    )
    streak = GaugeMetricFamily(
        "usage_sync_panel_failure_streak",
        "Runs in a row in which not one of the panel's users could be read.",
        labels=["panel_id", "panel_type"],
    )
    for panel_id, panel in sorted(stats.panels.items(), key=lambda item: int(item[0])):
        up.add_metric([panel_id, panel.panel_type], int(panel.up))
        streak.add_metric([panel_id, panel.panel_type], panel.failure_streak)
    yield up
    yield streak
    yield GaugeMetricFamily(
        "usage_sync_remote_operations_pending",
        "Panel state changes (enforcement's outbox) still to send, as of the last run.",
        value=stats.remote_pending or 0,
    )


def registry_for(container: Container) -> CollectorRegistry:
    """A registry holding only the run-state collector of `container`'s stores."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunStateCollector(container.run_stats(), container.lock()))
    return registry


def serve_if_configured(container: Container) -> None:
    """Serve the metrics on `USAGE_SYNC_METRICS_PORT`, in a daemon thread, when it is set."""
    settings = container.settings()
    if settings.metrics_port is None:
        return
    try:
        start_http_server(settings.metrics_port, settings.metrics_addr, registry_for(container))
    except OSError as exc:
        msg = (
            f"cannot serve metrics on {settings.metrics_addr}:{settings.metrics_port} "
            f"(USAGE_SYNC_METRICS_PORT): {exc.strerror or exc}"
        )
        raise ConfigurationError(msg) from exc
    logger.info(
        "Serving Prometheus metrics on http://%s:%s/metrics",
        settings.metrics_addr,
        settings.metrics_port,
    )


def exposition(container: Container) -> bytes:
    """The metrics in Prometheus's text format."""
    return generate_latest(registry_for(container))


def write_textfile(path: Path, text: bytes) -> None:
    """Replace `path` atomically, as node-exporter's textfile collector requires."""
    replace_file(path, text, mode=0o644)
