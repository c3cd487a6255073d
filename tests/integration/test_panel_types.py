"""Panels that name their real type in `extra`, end to end through `sync-one` and `sync`."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from original_rows import TEST_APP_KEY, fetch_row, insert_config, insert_panel, insert_reseller
from test_cli import usage_sync

from usage_sandbox.emulator import EmulatedUser, PanelEmulator

PASSWORD = "mz-pass-SECRET-7"


@pytest.fixture
def marzban() -> Iterator[PanelEmulator]:
    """A Marzban panel whose user `alice` has used 3 MiB."""
    users = [EmulatedUser("alice", upload=1_048_576, download=2_097_152)]
    with PanelEmulator("marzban", users=users, password=PASSWORD) as panel:
        yield panel


@pytest.fixture
def named_rows(original_db, marzban: PanelEmulator, tmp_path: Path):
    """A panel stored as `other` naming `marzban` in extra, one naming an unknown type."""
    engine = original_db.engine
    insert_panel(
        engine,
        id=7,
        name="Named Marzban",
        panel_type="other",
        url=marzban.url,
        password=PASSWORD,
        extra={"usage_sync_panel_type": "marzban"},
    )
    insert_panel(
        engine,
        id=8,
        name="Unknown",
        panel_type="other",
        url=marzban.url,
        password=PASSWORD,
        extra={"usage_sync_panel_type": "nosuch-panel"},
    )
    insert_reseller(engine, id=45, traffic_total_bytes=50 * 1024**3)
    # The config's own type is the enum value the app could store; the panel decides.
    insert_config(
        engine,
        id=1,
        reseller_id=45,
        external_username="alice",
        panel_type="xui",
        panel_id=7,
        panel_user_id="alice",
        usage_bytes=0,
    )
    insert_config(
        engine,
        id=2,
        reseller_id=45,
        external_username="bob",
        panel_type="marzban",
        panel_id=8,
        panel_user_id="bob",
        usage_bytes=5,
    )
    env = {
        "USAGE_SYNC_DATABASE_URL": original_db.url,
        "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
        "USAGE_SYNC_LOG_FILE": str(tmp_path / "usage-sync.log"),
        "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
    }
    return original_db, env


class TestTypeNamedInExtra:
    """`extra.usage_sync_panel_type` decides the client for every config of the panel."""

    def test_sync_one_reads_through_the_named_type(self, named_rows) -> None:
        """A config of type `xui` on a panel naming `marzban` is read from Marzban."""
        db, env = named_rows
        result = usage_sync("sync-one", "--config", "1", env=env)
        assert result.returncode == 0, result.stderr
        assert "  Panel Type: xui\n" in result.stdout
        assert "  Panel Type: marzban\n" in result.stdout
        assert fetch_row(db.engine, "reseller_configs", 1)["usage_bytes"] == 3_145_728

    def test_unknown_name_fails_its_panel_alone(self, named_rows) -> None:
        """`sync` records the named panel's config and fails the unknown one with its reason."""
        db, env = named_rows
        one = json.loads(usage_sync("sync-one", "--config", "2", "--json", env=env).stdout)
        assert one["ok"] is False
        assert one["failure"].startswith(
            "extra.usage_sync_panel_type names an unknown panel type 'nosuch-panel'"
        )
        assert one["panel"]["type_name"] == "nosuch-panel"
        result = usage_sync("sync", "--json", env=env)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["configs"], summary["updated"], summary["failed"]) == (2, 1, 1)
        assert fetch_row(db.engine, "reseller_configs", 1)["usage_bytes"] == 3_145_728
        assert fetch_row(db.engine, "reseller_configs", 2)["usage_bytes"] == 5
