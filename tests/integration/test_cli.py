"""The `usage-sync` command line, run as a subprocess against real databases and panels."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from original_rows import TEST_APP_KEY, fetch_row, insert_config, insert_panel, insert_reseller
from sqlalchemy import make_url

from usage_adapters.file_lock import FileLock
from usage_sandbox.emulator import EmulatedUser, PanelEmulator

API_KEY = "eyl-key-SECRET-42"
SEED_LINES = """\
=== Syncing Usage for Config #123 ===

📋 Config Information:
  ID: 123
  Reseller ID: 45
  Status: active
  Panel Type: eylandoo
  Panel ID: 10
  Panel User ID: test_user_123
  External Username: test_user_123
  Current Usage: 524288000 bytes (500.00 MB)
  Traffic Limit: 10737418240 bytes (10240.00 MB)

🔧 Panel Information:
  Panel Name: Eylandoo Production
  Panel Type: eylandoo
  URL: {url}

📡 Fetching usage from panel...

✅ Successfully fetched usage from panel
📊 Usage: 1073741824 bytes (1024.00 MB)

💾 Updated config usage_bytes in database
  Previous: 524288000 bytes (500.00 MB)
  Current:  1073741824 bytes (1024.00 MB)
  Delta:    549453824 bytes (524.00 MB)

✅ Sync completed successfully
"""


def usage_sync(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `usage-sync` console script."""
    script = Path(sys.executable).with_name("usage-sync")
    return subprocess.run(
        [str(script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def eylandoo() -> Iterator[PanelEmulator]:
    """An Eylandoo panel whose user has used 1024 MB (512 up, 512 down)."""
    users = [EmulatedUser("test_user_123", upload=536_870_912, download=536_870_912)]
    with PanelEmulator("eylandoo", users=users, api_key=API_KEY) as panel:
        yield panel


@pytest.fixture
def seeded(original_db, eylandoo: PanelEmulator, tmp_path: Path):
    """The seed's example rows in a database the app created, and the env to reach them."""
    insert_panel(
        original_db.engine,
        id=10,
        name="Eylandoo Production",
        panel_type="eylandoo",
        url=eylandoo.url,
        username=None,
        password=None,
        api_token=API_KEY,
    )
    insert_reseller(original_db.engine, id=45, traffic_total_bytes=50 * 1024**3)
    insert_config(
        original_db.engine,
        id=123,
        reseller_id=45,
        external_username="test_user_123",
        panel_type="eylandoo",
        panel_id=10,
        usage_bytes=524_288_000,
        traffic_limit_bytes=10_737_418_240,
    )
    log_file = tmp_path / "usage-sync.log"
    env = {
        "USAGE_SYNC_DATABASE_URL": original_db.url,
        "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
        "USAGE_SYNC_LOG_FILE": str(log_file),
        "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
    }
    return original_db, env, log_file


class TestSyncOne:
    """`usage-sync sync-one` prints the seed's lines and writes the new usage."""

    def test_seed_output_and_write(self, seeded, eylandoo: PanelEmulator) -> None:
        """The seed's example, end to end: exact output, exit 0, usage and total stored."""
        db, env, log_file = seeded
        result = usage_sync("sync-one", "--config", "123", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == SEED_LINES.format(url=eylandoo.url)
        assert fetch_row(db.engine, "reseller_configs", 123)["usage_bytes"] == 1_073_741_824
        assert fetch_row(db.engine, "resellers", 45)["traffic_used_bytes"] == 1_073_741_824
        log = log_file.read_text(encoding="utf-8")
        assert "Eylandoo usage from total_traffic_bytes" in log
        assert "Eylandoo usage for user test_user_123: 1073741824 bytes" in log
        assert API_KEY not in log

    def test_equals_form_and_json(self, seeded) -> None:
        """`--config=123 --json` prints one JSON document."""
        _, env, _ = seeded
        result = usage_sync("sync-one", "--config=123", "--json", env=env)
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert document["ok"] is True
        assert document["usage"] == {"bytes": 1_073_741_824, "path": "total_traffic_bytes"}
        assert document["ledger"]["delta_bytes"] == 549_453_824

    def test_missing_config_option(self, seeded) -> None:
        """Without --config: the original's message and exit 1."""
        _, env, _ = seeded
        result = usage_sync("sync-one", env=env)
        assert result.returncode == 1
        assert "Please provide a config ID using --config={id}" in result.stderr

    def test_unknown_config(self, seeded) -> None:
        """An unknown id: `Config with ID 999 not found`, exit 1."""
        _, env, _ = seeded
        result = usage_sync("sync-one", "--config", "999", env=env)
        assert result.returncode == 1
        assert "Config with ID 999 not found" in result.stderr

    def test_hard_failure_writes_nothing(self, seeded, eylandoo: PanelEmulator) -> None:
        """A user missing on the panel: the hard-failure lines, exit 1, usage unchanged."""
        db, env, log_file = seeded
        eylandoo.users.remove("test_user_123")
        result = usage_sync("sync-one", "--config", "123", env=env)
        assert result.returncode == 1
        assert "❌ Failed to fetch usage (returned null - hard failure)" in result.stdout
        assert "  - User not found on panel" in result.stdout
        assert fetch_row(db.engine, "reseller_configs", 123)["usage_bytes"] == 524_288_000
        log = log_file.read_text(encoding="utf-8")
        assert "Eylandoo Get User failed:" in log
        assert "Eylandoo usage fetch failed for user test_user_123 (hard failure)" in log

    def test_wrong_app_key_names_the_panel(self, seeded) -> None:
        """An APP_KEY that does not decrypt the token fails clearly, naming panel 10."""
        db, env, _ = seeded
        bad = {**env, "USAGE_SYNC_APP_KEY": "base64:" + "B" * 43 + "="}
        result = usage_sync("sync-one", "--config", "123", env=bad)
        assert result.returncode == 1
        assert "panel 10: api_token could not be read" in result.stdout
        assert fetch_row(db.engine, "reseller_configs", 123)["usage_bytes"] == 524_288_000


class TestSettingsCommands:
    """`usage-sync settings get/set` read and upsert the settings table."""

    def test_set_then_get(self, seeded) -> None:
        """A value set is read back; an out-of-range interval gets a note."""
        _, env, _ = seeded
        key = "reseller.usage_sync_interval_minutes"
        assert usage_sync("settings", "get", key, env=env).returncode == 1
        result = usage_sync("settings", "set", key, "10", env=env)
        assert result.returncode == 0, result.stderr
        assert "clamped to 5" in result.stderr
        result = usage_sync("settings", "get", key, env=env)
        assert result.stdout.strip() == "10"


class TestStandalone:
    """A standalone SQLite database made by `db init`."""

    def test_db_init_and_empty_sync_one(self, tmp_path: Path) -> None:
        """`db init` creates the tables once; sync-one then reports an unknown id."""
        env = {"USAGE_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"}
        first = usage_sync("db", "init", env=env)
        assert first.returncode == 0, first.stderr
        assert "reseller_configs" in first.stdout
        assert "nothing to do" in usage_sync("db", "init", env=env).stdout
        assert usage_sync("sync-one", "--config", "1", env=env).returncode == 1

    def test_missing_tables_are_explained(self, tmp_path: Path) -> None:
        """An empty database gets a hint instead of a traceback."""
        (tmp_path / "empty.sqlite").touch()
        env = {"USAGE_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}"}
        result = usage_sync("sync-one", "--config", "1", env=env)
        assert result.returncode == 7
        assert "usage-sync db init" in result.stderr
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize("original_db", ["mariadb", "postgresql"], indirect=True)
    def test_missing_database_is_not_missing_tables(self, original_db) -> None:
        """A database that does not exist is named as such, not sent to `db init`."""
        url = make_url(original_db.url).set(database="usync_no_such_database")
        env = {"USAGE_SYNC_DATABASE_URL": url.render_as_string(hide_password=False)}
        result = usage_sync("sync", env=env)
        assert result.returncode == 6
        assert "Cannot use the database: the database does not exist" in result.stderr
        assert "db init" not in result.stderr
        assert "Traceback" not in result.stderr


class TestSyncAndSchedule:
    """`usage-sync sync` runs a full sync now; `schedule` then shows it."""

    def test_sync_json_then_schedule(self, seeded) -> None:
        """The full sync writes the usage, prints its summary and leaves the lock free."""
        db, env, log_file = seeded
        result = usage_sync("sync", "--json", env=env)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["configs"], summary["updated"], summary["failed"]) == (1, 1, 0)
        assert fetch_row(db.engine, "reseller_configs", 123)["usage_bytes"] == 1_073_741_824
        assert "Reseller usage sync completed" in log_file.read_text(encoding="utf-8")
        shown = json.loads(usage_sync("schedule", "--json", env=env).stdout)
        assert shown["lock_held"] is False
        assert shown["interval"] == 5
        assert len(shown["next_dispatches"]) == 5
        assert shown["last_run"]["updated"] == 1

    def test_sync_text_summary(self, seeded) -> None:
        """Without --json the summary is a readable line per panel type."""
        _, env, _ = seeded
        result = usage_sync("sync", env=env)
        assert result.returncode == 0, result.stderr
        assert "1 configs in" in result.stdout
        assert "eylandoo: updated 1" in result.stdout

    def test_sync_refuses_while_a_run_holds_the_lock(self, seeded) -> None:
        """With the unique lock held (a run in progress), `sync` exits 2 and writes nothing."""
        db, env, _ = seeded
        lock = FileLock(Path(env["USAGE_SYNC_STATE_DIR"]) / "unique-lock.json")
        assert lock.acquire(300) is not None
        result = usage_sync("sync", env=env)
        assert result.returncode == 2
        assert "already running" in result.stderr
        assert fetch_row(db.engine, "reseller_configs", 123)["usage_bytes"] == 524_288_000
