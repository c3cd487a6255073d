"""What every run adds up to: run counts and durations, config outcomes, each panel's streak.

The last run's summary says what one run did; these statistics are folded
from every run since the store was created, so that another process (the
`metrics` command, a scrape of the scheduler while a worker runs the sync)
can answer for runs it did not run: monotonic counters for Prometheus, the
last success for the health check, and how many runs in a row each panel
failed. They are kept as one JSON document beside the last run's summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import attrs

from usage_core.summary import add_per_panel_type

# Upper bounds of the run duration histogram, in seconds (a run may take up to the job timeout).
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
ERROR_CHARS = 200


@attrs.frozen
class PanelStreak:
    """One panel's reads over the runs: when it last answered, how many runs in a row it failed.

    A panel fails a run when not one of its users could be read in it.
    """

    panel_type: str
    up: bool
    failure_streak: int = 0
    last_success_at: str | None = None
    last_failure_at: str | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return attrs.asdict(self)


@attrs.frozen
class RunStats:
    """Every finished run folded into counters, timestamps and per-panel streaks."""

    runs: int = 0
    runs_failed: int = 0
    duration_sum_s: float = 0.0
    # Runs per duration bucket (not cumulative), one more for durations above the last bound.
    duration_counts: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    # `panel_type` -> outcome -> configs, over every run.
    configs: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    last_run_at: str | None = None
    last_duration_s: float | None = None
    last_success_at: str | None = None
    last_failure_at: str | None = None
    last_error: str | None = None
    remote_pending: int | None = None
    panels: Mapping[str, PanelStreak] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form, read back by `from_dict`."""
        document = attrs.asdict(self, recurse=False)
        document["duration_counts"] = list(self.duration_counts)
        document["configs"] = {t: dict(outcomes) for t, outcomes in self.configs.items()}
        document["panels"] = {pid: streak.as_dict() for pid, streak in self.panels.items()}
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, object] | None) -> RunStats:
        """The statistics in `document`; anything missing or malformed starts from zero."""
        if not document:
            return cls()
        counts = document.get("duration_counts")
        duration_counts = cls().duration_counts
        if isinstance(counts, list) and len(counts) == len(duration_counts):
            duration_counts = tuple(_int(n) for n in counts)
        return cls(
            runs=_int(document.get("runs")),
            runs_failed=_int(document.get("runs_failed")),
            duration_sum_s=_float(document.get("duration_sum_s")) or 0.0,
            duration_counts=duration_counts,
            configs=_configs(document.get("configs")),
            last_run_at=_text(document.get("last_run_at")),
            last_duration_s=_float(document.get("last_duration_s")),
            last_success_at=_text(document.get("last_success_at")),
            last_failure_at=_text(document.get("last_failure_at")),
            last_error=_text(document.get("last_error")),
            remote_pending=_optional_int(document.get("remote_pending")),
            panels=_panels(document.get("panels")),
        )


def stamp_seconds(stamp: str | None) -> float | None:
    """Unix time of the ISO 8601 `stamp` (UTC when it names no zone), or None when unusable."""
    if stamp is None:
        return None
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return then.timestamp()


def run_succeeded(summary: Mapping[str, object]) -> bool:
    """A finished run succeeded unless every config it tried failed."""
    failed = _int(summary.get("failed"))
    synced = _int(summary.get("updated")) + _int(summary.get("unchanged"))
    return failed == 0 or synced > 0


def after_run(stats: RunStats, summary: Mapping[str, object]) -> RunStats:
    """`stats` with one finished run's summary added."""
    finished_at = _text(summary.get("finished_at")) or stats.last_run_at
    duration = max(0.0, _float(summary.get("duration_s")) or 0.0)
    bucket = next(
        (i for i, bound in enumerate(DURATION_BUCKETS) if duration <= bound), len(DURATION_BUCKETS)
    )
    counts = list(stats.duration_counts)
    counts[bucket] += 1
    succeeded = run_succeeded(summary)
    enforcement = summary.get("enforcement")
    pending = stats.remote_pending
    if isinstance(enforcement, Mapping) and "remote_pending" in enforcement:
        pending = _optional_int(enforcement.get("remote_pending"))
    return attrs.evolve(
        stats,
        runs=stats.runs + 1,
        runs_failed=stats.runs_failed + (not succeeded),
        duration_sum_s=stats.duration_sum_s + duration,
        duration_counts=tuple(counts),
        configs=_added_configs(stats.configs, summary.get("per_panel_type")),
        last_run_at=finished_at,
        last_duration_s=duration,
        last_success_at=finished_at if succeeded else stats.last_success_at,
        last_failure_at=stats.last_failure_at if succeeded else finished_at,
        last_error=None if succeeded else "every config failed",
        remote_pending=pending,
        panels=_streaks(stats.panels, summary.get("per_panel"), finished_at),
    )


def after_failure(stats: RunStats, at: datetime, error: str) -> RunStats:
    """`stats` with a run that ended without finishing (no summary), at `at`."""
    return attrs.evolve(
        stats,
        runs_failed=stats.runs_failed + 1,
        last_failure_at=at.isoformat(),
        last_error=error[:ERROR_CHARS],
    )


def _added_configs(
    totals: Mapping[str, Mapping[str, int]], per_type: object
) -> dict[str, dict[str, int]]:
    added = {panel_type: dict(outcomes) for panel_type, outcomes in totals.items()}
    add_per_panel_type(added, per_type)
    return added


def _streaks(
    before: Mapping[str, PanelStreak], per_panel: object, at: str | None
) -> dict[str, PanelStreak]:
    """The streaks after one run, of the panels it read.

    A finished run reads every panel that has configs to sync, so a panel it did
    not read was deleted or lost its configs: it is forgotten, and a streak it
    had can no longer keep the health check red. A summary without `per_panel`
    (written before it existed) leaves the streaks as they were.
    """
    if not isinstance(per_panel, Mapping):
        return dict(before)
    streaks = {}
    for panel_id, reads in per_panel.items():
        if not isinstance(reads, Mapping):
            continue
        panel_type = str(reads.get("type", ""))
        up = _int(reads.get("read")) > 0 or _int(reads.get("failed")) == 0
        old = before.get(str(panel_id), PanelStreak(panel_type=panel_type, up=up))
        if up:
            streaks[str(panel_id)] = attrs.evolve(
                old, panel_type=panel_type, up=True, failure_streak=0, last_success_at=at
            )
        else:
            streaks[str(panel_id)] = attrs.evolve(
                old,
                panel_type=panel_type,
                up=False,
                failure_streak=old.failure_streak + 1,
                last_failure_at=at,
            )
    return streaks


def _panels(value: object) -> dict[str, PanelStreak]:
    if not isinstance(value, Mapping):
        return {}
    panels = {}
    for panel_id, item in value.items():
        if isinstance(item, Mapping):
            panels[str(panel_id)] = PanelStreak(
                panel_type=str(item.get("panel_type", "")),
                up=bool(item.get("up")),
                failure_streak=_int(item.get("failure_streak")),
                last_success_at=_text(item.get("last_success_at")),
                last_failure_at=_text(item.get("last_failure_at")),
            )
    return panels


def _configs(value: object) -> dict[str, dict[str, int]]:
    return _added_configs({}, value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _optional_int(value: object) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _int(value: object) -> int:
    return _optional_int(value) or 0
