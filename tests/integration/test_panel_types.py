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
        assert result.returncode == 1, result.stderr  # some configs failed
        summary = json.loads(result.stdout)
        assert (summary["configs"], summary["updated"], summary["failed"]) == (2, 1, 1)
        assert fetch_row(db.engine, "reseller_configs", 1)["usage_bytes"] == 3_145_728
        assert fetch_row(db.engine, "reseller_configs", 2)["usage_bytes"] == 5


ADMIN = "pg-admin"
HIDDIFY_KEY = "6098ea35-8cb2-4a08-ba15-2be25bc49cb6"  # a Hiddify API key is the admin's uuid
HIDDIFY_USER = "0b3a5e7c-1f2d-4c6b-9a8e-7d6c5b4a3f21"
PROXY = "/admin-proxy-7Qw"
GIB = 2**30
PG_USED = 600 * 1024**2
# 5,972,593,704 bytes as Hiddify reports them: 5.562...GiB as a float.
HIDDIFY_USED = 5_972_593_704

PASARGUARD_LINES = """\
=== Syncing Usage for Config #31 ===

📋 Config Information:
  ID: 31
  Reseller ID: 46
  Status: active
  Panel Type: marzban
  Panel ID: 21
  Panel User ID: pg_user
  External Username: pg_user
  Current Usage: 0 bytes (0.00 MB)
  Traffic Limit: 10737418240 bytes (10240.00 MB)

🔧 Panel Information:
  Panel Name: PasarGuard
  Panel Type: pasarguard
  URL: {url}

📡 Fetching usage from panel...

✅ Successfully fetched usage from panel
📊 Usage: 629145600 bytes (600.00 MB)

💾 Updated config usage_bytes in database
  Previous: 0 bytes (0.00 MB)
  Current:  629145600 bytes (600.00 MB)
  Delta:    629145600 bytes (600.00 MB)

✅ Sync completed successfully
"""


@pytest.fixture
def new_panels(original_db, tmp_path: Path):
    """A PasarGuard and a Hiddify panel stored as `other`, one config each, a 5 GiB quota."""
    with (
        PanelEmulator(
            "pasarguard",
            users=[EmulatedUser("pg_user", download=PG_USED)],
            username=ADMIN,
            password=PASSWORD,
        ) as pasarguard,
        PanelEmulator(
            "hiddify",
            users=[EmulatedUser(HIDDIFY_USER, download=HIDDIFY_USED)],
            api_key=HIDDIFY_KEY,
            base_path=PROXY,
        ) as hiddify,
    ):
        engine = original_db.engine
        insert_panel(
            engine,
            id=21,
            name="PasarGuard",
            panel_type="other",
            url=pasarguard.url,
            username=ADMIN,
            password=PASSWORD,
            extra={"usage_sync_panel_type": "pasarguard"},
        )
        insert_panel(
            engine,
            id=22,
            name="Hiddify",
            panel_type="other",
            url=hiddify.url,
            username=None,
            password=None,
            api_token=HIDDIFY_KEY,
            extra={"usage_sync_panel_type": "hiddify"},
        )
        insert_reseller(engine, id=46, traffic_total_bytes=5 * GIB)
        for config_id, panel_id, name in ((31, 21, "pg_user"), (32, 22, HIDDIFY_USER)):
            insert_config(
                engine,
                id=config_id,
                reseller_id=46,
                external_username=name,
                panel_type="marzban",
                panel_id=panel_id,
                panel_user_id=name,
                usage_bytes=0,
                traffic_limit_bytes=10 * GIB,
            )
        env = {
            "USAGE_SYNC_DATABASE_URL": original_db.url,
            "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
            "USAGE_SYNC_LOG_FILE": str(tmp_path / "usage-sync.log"),
            "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
        }
        yield original_db, env, pasarguard, hiddify


class TestNewPanelTypes:
    """PasarGuard and Hiddify panels, named in extra, end to end."""

    def test_sync_one_pasarguard_prints_the_seed_shapes(self, new_panels) -> None:
        """`sync-one` on a PasarGuard config: the seed's lines, the panel's real type."""
        db, env, pasarguard, _ = new_panels
        result = usage_sync("sync-one", "--config", "31", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == PASARGUARD_LINES.format(url=pasarguard.url)
        assert fetch_row(db.engine, "reseller_configs", 31)["usage_bytes"] == PG_USED
        assert PASSWORD not in Path(env["USAGE_SYNC_LOG_FILE"]).read_text(encoding="utf-8")

    def test_sync_one_reports_a_limited_admin(self, new_panels) -> None:
        """The owning admin limited: usage recorded, `cannot_connect` and a log line say why."""
        db, env, pasarguard, _ = new_panels
        pasarguard.admins.set_admin(ADMIN, "limited")
        document = json.loads(usage_sync("sync-one", "--config", "31", "--json", env=env).stdout)
        reason = f"admin {ADMIN} is limited: the panel removed its users from the nodes"
        assert (document["ok"], document["cannot_connect"]) == (True, reason)
        assert document["panel"]["type_name"] == "pasarguard"
        log = Path(env["USAGE_SYNC_LOG_FILE"]).read_text(encoding="utf-8")
        assert f"PasarGuard user pg_user cannot connect: {reason}" in log
        assert fetch_row(db.engine, "reseller_configs", 31)["usage_bytes"] == PG_USED

    def test_sync_one_hiddify_reads_exact_bytes(self, new_panels) -> None:
        """A Hiddify config by uuid: the GiB float becomes the panel's own byte count."""
        db, env, _, hiddify = new_panels
        document = json.loads(usage_sync("sync-one", "--config", "32", "--json", env=env).stdout)
        assert document["usage"] == {"bytes": HIDDIFY_USED, "path": "current_usage_GB"}
        assert document["cannot_connect"] is None
        assert document["panel"]["url"] == hiddify.url
        assert fetch_row(db.engine, "reseller_configs", 32)["usage_bytes"] == HIDDIFY_USED
        assert HIDDIFY_KEY not in Path(env["USAGE_SYNC_LOG_FILE"]).read_text(encoding="utf-8")

    def test_sync_reads_both_and_enforcement_reaches_both(self, new_panels) -> None:
        """Over quota the reseller is suspended and both users disabled on their panels."""
        db, env, pasarguard, hiddify = new_panels
        result = usage_sync("sync", "--json", env=env)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["configs"], summary["updated"], summary["failed"]) == (2, 2, 0)
        assert fetch_row(db.engine, "reseller_configs", 32)["usage_bytes"] == HIDDIFY_USED
        total = fetch_row(db.engine, "resellers", 46)["traffic_used_bytes"]
        assert total == PG_USED + HIDDIFY_USED
        enforcement = summary["enforcement"]
        assert (enforcement["disabled"], enforcement["remote_done"]) == (2, 2)
        assert not pasarguard.users.is_enabled("pg_user")
        assert not hiddify.users.is_enabled(HIDDIFY_USER)
        assert hiddify.users.get(HIDDIFY_USER).used == HIDDIFY_USED  # type: ignore[union-attr]
