"""Quota enforcement end to end: `usage-sync sync` and `enforce` on the app's own schema,
with a panel of every type over loopback HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from original_rows import (
    TEST_APP_KEY,
    fetch_row,
    insert_audit_log,
    insert_config,
    insert_panel,
    insert_reseller,
    rows_of,
)
from sqlalchemy import text

from usage_sandbox.emulator import EmulatedUser, Fault, PanelEmulator, split_total

MIB = 1024**2
GIB = 1024**3
ADMIN, PASSWORD, KEY = "admin", "pw-SECRET-9", "key-SECRET-9"
VARIANTS = {
    "eylandoo": ("eylandoo", {}),
    "eylandoo-old": ("eylandoo", {"eylandoo_set_state": False}),
    "marzban": ("marzban", {}),
    "marzneshin": ("marzneshin", {}),
    "xui-v2": ("xui", {"xui_version": 2}),
    "xui-v3": ("xui", {"xui_version": 3, "base_path": "/p3"}),
}


def usage_sync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed `usage-sync` console script."""
    script = Path(sys.executable).with_name("usage-sync")
    return subprocess.run(
        [str(script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@attrs.define
class World:
    """The database, the panels and the ids of the rows the tests look at."""

    db: object
    env: dict[str, str]
    panels: dict[str, PanelEmulator]
    reseller: int
    bystander: int
    configs: dict[str, int]
    manual: int

    def sync(self) -> dict:
        """`usage-sync sync --json`; its summary."""
        done = usage_sync("sync", "--json", env=self.env)
        summary = json.loads(done.stdout)
        assert done.returncode == (1 if summary["failed"] else 0), done.stderr
        return summary

    def writes(self) -> int:
        """Write requests every panel has answered."""
        return sum(p.counts.writes for p in self.panels.values())

    def records(self) -> tuple[int, int]:
        """(config events, audit rows) in the database."""
        engine = self.db.engine  # type: ignore[attr-defined]
        return len(rows_of(engine, "reseller_config_events")), len(rows_of(engine, "audit_logs"))

    def status(self, table: str, row_id: int) -> str:
        """A row's status."""
        return str(fetch_row(self.db.engine, table, row_id)["status"])  # type: ignore[attr-defined]


@pytest.fixture
def world(original_db, tmp_path: Path) -> Iterator[World]:
    """A reseller with one config on each panel variant, 300 MiB each, over a 1 GiB quota."""
    used = split_total(300 * MIB)
    panels = {
        name: PanelEmulator(
            kind,
            users=[EmulatedUser(f"u-{name}", upload=used[0], download=used[1])],
            username=ADMIN,
            password=PASSWORD,
            api_key=KEY,
            **options,
        )
        for name, (kind, options) in VARIANTS.items()
    }
    for panel in panels.values():
        panel.start()
    try:
        engine = original_db.engine
        reseller = insert_reseller(engine, traffic_total_bytes=GIB)
        bystander = insert_reseller(engine, traffic_total_bytes=100 * GIB)
        configs = {}
        for name, panel in panels.items():
            panel_id = insert_panel(
                engine,
                panel_type=panel.kind,
                url=panel.url,
                username=None if panel.kind == "eylandoo" else ADMIN,
                password=None if panel.kind == "eylandoo" else PASSWORD,
                api_token=KEY if panel.kind == "eylandoo" else None,
            )
            configs[name] = insert_config(
                engine,
                reseller_id=reseller,
                external_username=f"u-{name}",
                panel_type=panel.kind,
                panel_id=panel_id,
                meta={"settled_usage_bytes": 0, "note": "the app's own key"},
            )
        manual = insert_config(engine, reseller_id=reseller, status="disabled", usage_bytes=0)
        insert_config(engine, reseller_id=bystander, external_username="b", usage_bytes=0)
        env = {
            "USAGE_SYNC_DATABASE_URL": original_db.url,
            "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
            "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
            "USAGE_SYNC_LOG_FILE": str(tmp_path / "usage-sync.log"),
            "USAGE_SYNC_HTTP_TIMEOUT": "5",
        }
        yield World(original_db, env, panels, reseller, bystander, configs, manual)
    finally:
        for panel in panels.values():
            panel.close()


def test_suspend_then_recover_exactly_once(world: World) -> None:
    """Past quota + grace: suspended and disabled everywhere; quota raised: exactly those back."""
    summary = world.sync()
    enforcement = summary["enforcement"]
    assert (enforcement["suspended"], enforcement["disabled"]) == (1, len(VARIANTS))
    assert (enforcement["remote_done"], enforcement["remote_pending"]) == (len(VARIANTS), 0)
    assert world.status("resellers", world.reseller) == "suspended"
    assert world.status("resellers", world.bystander) == "active"
    for name, config_id in world.configs.items():
        assert world.status("reseller_configs", config_id) == "disabled"
        assert not world.panels[name].users.is_enabled(f"u-{name}"), name
        meta = fetch_row(world.db.engine, "reseller_configs", config_id)["meta"]  # type: ignore[attr-defined]
        meta = meta if isinstance(meta, dict) else json.loads(meta)
        assert meta["disabled_by_reseller_suspension"] is True
        assert meta["disabled_by_reseller_id"] == world.reseller
        assert meta["note"] == "the app's own key"
        assert "usage_sync_remote_op" not in meta
    assert world.status("reseller_configs", world.manual) == "disabled"
    events, audits = world.records()
    assert (events, audits) == (len(VARIANTS), 1 + len(VARIANTS))
    for event in rows_of(world.db.engine, "reseller_config_events"):  # type: ignore[attr-defined]
        assert event["type"] == "auto_disabled"
        assert event["meta"]["remote_success"] is True
        assert event["meta"]["reason"] == "reseller_quota_exhausted"

    # A second run: nothing decided, no request to a panel, no row written.
    writes = world.writes()
    again = world.sync()["enforcement"]
    assert (again["suspended"], again["disabled"], again["remote_done"]) == (0, 0, 0)
    assert world.writes() == writes
    assert world.records() == (events, audits)

    with world.db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            text("UPDATE resellers SET traffic_total_bytes = :q WHERE id = :i"),
            {"q": 10 * GIB, "i": world.reseller},
        )
    back = world.sync()["enforcement"]
    assert (back["activated"], back["enabled"], back["remote_done"]) == (
        1,
        len(VARIANTS),
        len(VARIANTS),
    )
    assert world.status("resellers", world.reseller) == "active"
    for name, config_id in world.configs.items():
        assert world.status("reseller_configs", config_id) == "active"
        assert world.panels[name].users.is_enabled(f"u-{name}"), name
    assert world.status("reseller_configs", world.manual) == "disabled"
    assert world.records() == (2 * len(VARIANTS), 2 + 2 * len(VARIANTS))
    writes = world.writes()
    world.sync()
    assert world.writes() == writes
    assert world.records() == (2 * len(VARIANTS), 2 + 2 * len(VARIANTS))


def test_a_panel_down_leaves_pending_work_that_the_next_run_completes(world: World) -> None:
    """A panel failing the disable keeps the config queued; the next run finishes it."""
    world.panels["marzban"].set_write_fault("u-marzban", Fault.http_status(500))
    first = world.sync()["enforcement"]
    assert (first["remote_done"], first["remote_failed"], first["remote_pending"]) == (
        len(VARIANTS) - 1,
        1,
        1,
    )
    marzban = world.configs["marzban"]
    assert world.status("reseller_configs", marzban) == "disabled"
    assert world.panels["marzban"].users.is_enabled("u-marzban")
    schedule = usage_sync("schedule", "--json", env=world.env)
    assert json.loads(schedule.stdout)["remote_operations_pending"] == 1
    world.panels["marzban"].clear_write_fault("u-marzban")
    second = world.sync()["enforcement"]
    assert (second["remote_done"], second["remote_pending"]) == (1, 0)
    assert not world.panels["marzban"].users.is_enabled("u-marzban")
    [event] = rows_of(world.db.engine, "reseller_config_events", reseller_config_id=marzban)  # type: ignore[attr-defined]
    assert event["meta"]["remote_success"] is True
    assert event["meta"]["attempts"] == 4


def test_enforce_exits_1_while_a_panel_operation_fails(world: World) -> None:
    """`enforce` exits 1 while a queued panel operation keeps failing, 0 once it is done."""
    world.panels["marzban"].set_write_fault("u-marzban", Fault.http_status(500))
    assert world.sync()["enforcement"]["remote_pending"] == 1
    failing = usage_sync("enforce", "--json", env=world.env)
    assert failing.returncode == 1, failing.stderr
    assert json.loads(failing.stdout)["remote_failed"] == 1
    world.panels["marzban"].clear_write_fault("u-marzban")
    done = usage_sync("enforce", "--json", env=world.env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["remote_pending"] == 0


def test_dry_run_reports_what_a_real_pass_then_does(world: World) -> None:
    """`enforce --dry-run --json` lists transitions and changes nothing; `enforce` makes them."""
    with world.db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            text("UPDATE resellers SET traffic_used_bytes = :u WHERE id = :i"),
            {"u": 2 * GIB, "i": world.reseller},
        )
    dry = usage_sync("enforce", "--dry-run", "--json", env=world.env)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["mode"] == "dry-run"
    planned = {(t.get("config_id"), t["action"]) for t in report["transitions"]}
    assert (None, "suspend") in planned
    assert world.status("resellers", world.reseller) == "active"
    assert world.writes() == 0
    assert world.records() == (0, 0)

    real = usage_sync("enforce", "--json", env=world.env)
    assert real.returncode == 0, real.stderr
    done = json.loads(real.stdout)
    assert {(t.get("config_id"), t["action"]) for t in done["transitions"]} == planned
    assert world.status("resellers", world.reseller) == "suspended"


def test_a_person_s_suspension_is_left_alone(world: World) -> None:
    """A reseller a person suspended is not re-activated, whatever its usage."""
    engine = world.db.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE resellers SET status = 'suspended', traffic_total_bytes = :q WHERE id = :i"
            ),
            {"q": 100 * GIB, "i": world.reseller},
        )
    insert_audit_log(
        engine,
        action="reseller_suspended",
        target_type="reseller",
        target_id=world.reseller,
        reason="admin_action",
        actor_type="App\\Models\\User",
        actor_id=1,
    )
    enforced = usage_sync("enforce", "--json", env=world.env)
    assert enforced.returncode == 0, enforced.stderr
    assert json.loads(enforced.stdout)["activated"] == 0
    assert world.status("resellers", world.reseller) == "suspended"
