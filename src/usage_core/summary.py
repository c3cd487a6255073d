"""What a full sync did: counts per panel type, and merging the parts of a fanned-out run."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

OUTCOMES = ("updated", "unchanged", "failed", "skipped")
# A run with every config failed lists this many; the rest are counted.
LISTED_FAILURES = 50


@attrs.frozen
class FailedConfig:
    """One config the run could not sync, and why."""

    config_id: int
    panel_id: int | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {"id": self.config_id, "panel": self.panel_id, "reason": self.reason}


@attrs.define
class SyncSummary:
    """What one full sync did, counted per panel type."""

    started_at: datetime
    finished_at: datetime | None = None
    resellers: int = 0
    configs: int = 0
    counts: dict[str, Counter[str]] = attrs.field(factory=lambda: defaultdict(Counter))
    resets: int = 0
    resellers_updated: int = 0
    eylandoo_configs_processed: int = 0
    panels: int = 0
    # Per panel id: its type, the users read and the users whose read failed.
    panel_reads: dict[int, tuple[str, int, int]] = attrs.field(factory=dict)
    failures: list[FailedConfig] = attrs.field(factory=list)
    failures_not_listed: int = 0

    def fail(self, panel_type: str, failure: FailedConfig) -> None:
        """Count a failed config, and list it while the list is short."""
        self.count(panel_type, "failed")
        if len(self.failures) < LISTED_FAILURES:
            self.failures.append(failure)
        else:
            self.failures_not_listed += 1

    def count(self, panel_type: str, outcome: str, n: int = 1) -> None:
        """Count `n` configs' outcome under their panel type."""
        self.counts[panel_type][outcome] += n

    def panel_read(self, panel_id: int, panel_type: str, *, read: int = 0, failed: int = 0) -> None:
        """Count users read, and users that failed to be read, from panel `panel_id`."""
        kind, were_read, were_failed = self.panel_reads.get(panel_id, (panel_type, 0, 0))
        self.panel_reads[panel_id] = (kind, were_read + read, were_failed + failed)

    def total(self, outcome: str) -> int:
        """The number of configs with `outcome`, over every panel type."""
        return sum(counter[outcome] for counter in self.counts.values())

    @property
    def done(self) -> int:
        """Configs with an outcome so far."""
        return sum(self.total(outcome) for outcome in OUTCOMES)

    @property
    def duration_s(self) -> float:
        """Seconds the run took."""
        end = self.finished_at or self.started_at
        return (end - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form of the summary."""
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": round(self.duration_s, 3),
            "resellers": self.resellers,
            "configs": self.configs,
            "panels": self.panels,
            "fetched": self.total("updated") + self.total("unchanged"),
            **{outcome: self.total(outcome) for outcome in OUTCOMES},
            "resets": self.resets,
            "resellers_updated": self.resellers_updated,
            "per_panel_type": {
                panel_type: {outcome: counter[outcome] for outcome in OUTCOMES}
                for panel_type, counter in sorted(self.counts.items())
            },
            "eylandoo_configs_processed": self.eylandoo_configs_processed,
            "per_panel": {
                str(panel_id): {"type": panel_type, "read": read, "failed": failed}
                for panel_id, (panel_type, read, failed) in sorted(self.panel_reads.items())
            },
            "failed_configs": [failure.as_dict() for failure in self.failures],
            "failed_configs_not_listed": self.failures_not_listed,
        }


def _int(value: object) -> int:
    # A part that is not a count (a job that did not run) adds nothing.
    try:
        return int(str(value or 0))
    except ValueError:
        return 0


def add_per_panel_type(totals: dict[str, dict[str, int]], per_type: object) -> None:
    """Add a summary's `per_panel_type` counts (panel type -> outcome -> n) into `totals`."""
    if not isinstance(per_type, Mapping):
        return
    for panel_type, outcomes in per_type.items():
        target = totals.setdefault(str(panel_type), {})
        if isinstance(outcomes, Mapping):
            for outcome, n in outcomes.items():
                target[str(outcome)] = target.get(str(outcome), 0) + _int(n)


# A fan-out panel job's usage plus settled bytes by reseller, beside its summary.
PART_SUMS_KEY = "reseller_sums"


def part_sums(parts: Sequence[Mapping[str, object]]) -> tuple[dict[int, int], frozenset[int]]:
    """The reseller sums of a fan-out's panel jobs, and the panels whose jobs gave them.

    A part without usable sums (a skipped job) covers no panel: the totals job
    reads that panel's configs itself.
    """
    sums: dict[int, int] = defaultdict(int)
    covered: set[int] = set()
    for part in parts:
        panel_id, given = part.get("panel_id"), part.get(PART_SUMS_KEY)
        if type(panel_id) is not int or not isinstance(given, Mapping):
            continue
        try:
            parsed = [(int(reseller_id), int(total)) for reseller_id, total in given.items()]
        except (TypeError, ValueError):
            continue
        covered.add(panel_id)
        for reseller_id, total in parsed:
            sums[reseller_id] += total
    return dict(sums), frozenset(covered)


def merge_summaries(
    panels: Sequence[Mapping[str, object]], totals: Mapping[str, object]
) -> dict[str, object]:
    """One run summary from a fan-out's panel jobs' summaries and its totals job's."""
    merged: dict[str, object] = dict(totals)
    for key in ("configs", "fetched", "updated", "unchanged", "failed", "skipped", "resets"):
        merged[key] = sum(_int(p.get(key)) for p in panels)
    merged["eylandoo_configs_processed"] = sum(
        _int(p.get("eylandoo_configs_processed")) for p in panels
    )
    merged["panels"] = len(panels)
    listed: list[object] = []
    for part in panels:
        failures = part.get("failed_configs")
        if isinstance(failures, list):
            listed += failures
    merged["failed_configs"] = listed[:LISTED_FAILURES]
    merged["failed_configs_not_listed"] = sum(
        _int(p.get("failed_configs_not_listed")) for p in panels
    ) + len(listed[LISTED_FAILURES:])
    per_type: dict[str, dict[str, int]] = {}
    for part in panels:
        add_per_panel_type(per_type, part.get("per_panel_type"))
    merged["per_panel_type"] = per_type
    per_panel: dict[str, object] = {}
    for part in panels:
        reads = part.get("per_panel")
        if isinstance(reads, Mapping):
            per_panel.update({str(k): v for k, v in reads.items()})
    merged["per_panel"] = per_panel
    starts = [str(p["started_at"]) for p in panels if p.get("started_at")]
    if starts:
        merged["started_at"] = min(starts)
    return merged
