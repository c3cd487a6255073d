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
    """The headline, one line of counts per panel type, and the enforcement counts."""
    lines = [summary_headline(summary)]
    enforcement = summary.get("enforcement")
    if isinstance(enforcement, Mapping):
        if "error" in enforcement:
            lines.append(f"enforcement failed: {enforcement['error']}")
        else:
            lines.append(enforcement_headline(enforcement))
    per_type = summary.get("per_panel_type")
    if isinstance(per_type, Mapping):
        for panel_type, counts in per_type.items():
            if isinstance(counts, Mapping):
                parts = ", ".join(f"{k} {v}" for k, v in counts.items())
                lines.append(f"  {panel_type}: {parts}")
    return lines


def enforcement_headline(report: Mapping[str, object]) -> str:
    """One line of enforcement counts."""
    return (
        f"enforcement {report.get('mode')}: {report.get('suspended', 0)} suspended, "
        f"{report.get('activated', 0)} re-activated, {report.get('disabled', 0)} configs disabled, "
        f"{report.get('expired', 0)} expired, {report.get('enabled', 0)} re-enabled; "
        f"remote: {report.get('remote_done', 0)} done, {report.get('remote_failed', 0)} failed, "
        f"{report.get('remote_pending', 0)} pending"
    )


def _transition(item: Mapping[str, object]) -> str:
    if "queued_remote" in item:
        return (
            f"  config {item['config_id']}: panel {item['queued_remote']} queued "
            f"({item.get('attempts')} attempts, last error: {item.get('last_error')})"
        )
    if "to_status" in item:
        call = item.get("remote_call")
        remote = f", panel {call}" if call else ", no panel to tell"
        return (
            f"  config {item['config_id']} (reseller {item['reseller_id']}): "
            f"{item['from_status']} -> {item['to_status']} ({item['reason']}){remote}"
        )
    return (
        f"  reseller {item['reseller_id']}: {item['action']} ({item['reason']}), "
        f"used {item.get('traffic_used_bytes')} of {item.get('traffic_total_bytes')} bytes"
    )


def enforcement_lines(report: Mapping[str, object]) -> list[str]:
    """The transitions, one line each, then the counts."""
    lines = []
    transitions = report.get("transitions")
    if isinstance(transitions, list):
        verb = "Would change" if report.get("mode") == "dry-run" else "Changed"
        if transitions:
            lines.append(f"{verb}:")
        lines += [_transition(item) for item in transitions if isinstance(item, Mapping)]
    lines.append(enforcement_headline(report))
    return lines
