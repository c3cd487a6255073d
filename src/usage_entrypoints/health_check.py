"""`usage-sync health` and the panel lines of `usage-sync schedule`, from the recorded runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from usage_core.dispatch import read_interval
from usage_core.health import HealthReport, assess
from usage_core.run_stats import RunStats

if TYPE_CHECKING:
    from usage_entrypoints.container import Container


def check_health(container: Container, max_panel_failures: int | None = None) -> HealthReport:
    """Judge the recorded runs now, with the interval in force and the lock as it is."""
    stats = RunStats.from_dict(container.run_stats().load())
    interval = read_interval(container.settings_repository()).minutes
    return assess(
        stats,
        container.clock().now(),
        interval_minutes=interval,
        lock_held=container.lock().remaining_seconds() is not None,
        max_panel_failures=max_panel_failures or container.settings().max_panel_failures,
    )


def health_lines(report: HealthReport) -> list[str]:
    """The verdict, then one line per reason."""
    success = (
        f"last success {report.last_success_at} ({report.last_success_age_s:.0f} s ago, "
        f"allowed {report.stale_after_s} s)"
        if report.last_success_at is not None and report.last_success_age_s is not None
        else "no success recorded"
    )
    if report.healthy:
        return [f"healthy: {success}"]
    return [f"unhealthy: {success}", *(f"  {reason}" for reason in report.reasons)]


def panel_lines(stats: RunStats) -> list[str]:
    """One line per panel the runs have read: up or down, its failure streak, its last success."""
    lines = []
    for panel_id, panel in sorted(stats.panels.items(), key=lambda item: int(item[0])):
        runs = panel.failure_streak
        state = "up" if panel.up else f"down, failed {runs} run{'' if runs == 1 else 's'} in a row"
        success = panel.last_success_at or "never"
        lines.append(f"  panel {panel_id} ({panel.panel_type}): {state}; last success {success}")
    return lines
