"""How `usage-sync sync-one` reports, as text lines or one JSON document."""

from __future__ import annotations

from typing import Any

from usage_core.ledger import StepKind
from usage_core.sync_one import SyncOneReport

MIB = 1048576

HARD_FAILURE_LINES = (
    "❌ Failed to fetch usage (returned null - hard failure)",
    "Check logs for details. Common causes:",
    "  - Panel not found or credentials invalid",
    "  - HTTP error or network issue",
    "  - User not found on panel",
)


def fmt_bytes(value: int) -> str:
    """`524288000 bytes (500.00 MB)`: MB is bytes / 1048576, no thousands separator."""
    return f"{value} bytes ({value / MIB:.2f} MB)"


def header_lines(report: SyncOneReport) -> list[str]:
    """The config and panel blocks printed before anything is fetched."""
    config = report.config
    if config is None:
        return []
    lines = [
        f"=== Syncing Usage for Config #{config.id} ===",
        "",
        "📋 Config Information:",
        f"  ID: {config.id}",
        f"  Reseller ID: {config.reseller_id}",
        f"  Status: {config.status}",
        f"  Panel Type: {config.panel_type}",
        f"  Panel ID: {config.panel_id if config.panel_id is not None else 'N/A'}",
        f"  Panel User ID: {config.panel_user_id or 'N/A'}",
        f"  External Username: {config.external_username or 'N/A'}",
        f"  Current Usage: {fmt_bytes(config.usage_bytes)}",
        f"  Traffic Limit: {fmt_bytes(config.traffic_limit_bytes)}",
    ]
    if report.panel is not None:
        lines += [
            "",
            "🔧 Panel Information:",
            f"  Panel Name: {report.panel.name}",
            f"  Panel Type: {report.panel.type_name}",
            f"  URL: {report.panel.display_url}",
        ]
    lines += ["", "📡 Fetching usage from panel...", ""]
    return lines


def result_lines(report: SyncOneReport) -> list[str]:
    """The lines printed once the fetch is done."""
    if report.failure is not None and report.reading is None:
        reason = f"  Reason: {report.failure.reason}"
        return [HARD_FAILURE_LINES[0], reason, *HARD_FAILURE_LINES[1:]]
    reading, step = report.reading, report.step
    if reading is None:
        return []
    lines = [
        "✅ Successfully fetched usage from panel",
        f"📊 Usage: {fmt_bytes(reading.bytes)}",
        "",
    ]
    if report.failure is not None or step is None:
        reason = report.failure.reason if report.failure else "not recorded"
        return [*lines, f"❌ Failed to record usage: {reason}"]
    previous, current = step.before.usage_bytes, step.after.usage_bytes
    lines += [
        "💾 Updated config usage_bytes in database",
        f"  Previous: {fmt_bytes(previous)}",
        f"  Current:  {fmt_bytes(current)}",
        f"  Delta:    {fmt_bytes(current - previous)}",
    ]
    if step.kind is StepKind.RESET:
        lines.append(
            f"  Settled:  {fmt_bytes(step.settled_now)} moved to settled_usage_bytes "
            "(the panel reset its counter)"
        )
    return [*lines, "", "✅ Sync completed successfully"]


def report_document(report: SyncOneReport) -> dict[str, Any]:
    """The `--json` form of a report."""
    config, panel, reading, step = report.config, report.panel, report.reading, report.step
    document: dict[str, Any] = {
        "config_id": report.config_id,
        "found": report.found,
        "ok": report.ok,
        "failure": report.failure.reason if report.failure else None,
        "config": None,
        "panel": None,
        "username": report.username,
        "usage": None,
        # Why the user cannot connect although it is counted (a PasarGuard admin limited).
        "cannot_connect": reading.blocked if reading is not None else None,
        "ledger": None,
        "reseller": None,
    }
    if config is not None:
        document["config"] = {
            "id": config.id,
            "reseller_id": config.reseller_id,
            "status": config.status,
            "panel_type": config.panel_type,
            "panel_id": config.panel_id,
            "panel_user_id": config.panel_user_id,
            "external_username": config.external_username,
            "usage_bytes": config.usage_bytes,
            "traffic_limit_bytes": config.traffic_limit_bytes,
            "settled_usage_bytes": config.settled_bytes,
        }
    if panel is not None:
        document["panel"] = {
            "id": panel.id,
            "name": panel.name,
            "panel_type": panel.panel_type,
            "type_name": panel.type_name,
            "url": panel.display_url,
        }
    if reading is not None:
        document["usage"] = {"bytes": reading.bytes, "path": reading.path}
        if reading.lifetime_bytes is not None:
            document["usage"]["lifetime_bytes"] = reading.lifetime_bytes
    if step is not None:
        document["ledger"] = {
            "kind": step.kind.value,
            "previous_usage_bytes": step.before.usage_bytes,
            "usage_bytes": step.after.usage_bytes,
            "delta_bytes": step.after.usage_bytes - step.before.usage_bytes,
            "settled_usage_bytes": step.after.settled_bytes,
            "settled_now_bytes": step.settled_now,
            "last_counter": step.after.last_counter,
            "written": step.changed,
        }
        if step.after.last_lifetime is not None:
            document["ledger"]["last_lifetime"] = step.after.last_lifetime
    if report.reseller is not None:
        document["reseller"] = {
            "id": report.reseller.reseller_id,
            "previous_used_bytes": report.reseller.previous,
            "used_bytes": report.reseller.current,
            "total_from_configs": report.reseller.from_configs,
            "admin_forgiven_bytes": report.reseller.forgiven,
        }
    return document
