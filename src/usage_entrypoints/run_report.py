"""How a full sync's summary reads to a person."""

from __future__ import annotations

from collections.abc import Mapping


def summary_headline(summary: Mapping[str, object]) -> str:
    """One line: resellers, configs, duration and the outcome counts."""
    resets = summary.get("resets", 0)
    duration = summary.get("duration_s", 0.0)
    seconds = duration if isinstance(duration, int | float) else 0.0
    return (
        f"{summary.get('resellers')} resellers, {summary.get('configs')} configs in "
        f"{seconds:.2f} s: {summary.get('fetched')} fetched "
        f"({summary.get('updated')} updated, {summary.get('unchanged')} unchanged), "
        f"{summary.get('failed')} failed, {summary.get('skipped')} skipped, "
        f"{resets} counter reset{'' if resets == 1 else 's'}"
    )


def summary_lines(summary: Mapping[str, object]) -> list[str]:
    """The headline, then one line of counts per panel type."""
    lines = [summary_headline(summary)]
    per_type = summary.get("per_panel_type")
    if isinstance(per_type, Mapping):
        for panel_type, counts in per_type.items():
            if isinstance(counts, Mapping):
                parts = ", ".join(f"{k} {v}" for k, v in counts.items())
                lines.append(f"  {panel_type}: {parts}")
    return lines
