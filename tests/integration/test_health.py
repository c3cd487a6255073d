"""`usage-sync health` and the panel streaks of `usage-sync schedule`, run as subprocesses."""

import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from original_rows import insert_config, insert_panel, insert_reseller
from panel_support import closed_port_url
from sqlalchemy import create_engine
from tests_support_paths import usage_sync_script

from usage_adapters.sql.tables import metadata
from usage_sandbox.emulator import PanelEmulator


def usage_sync(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one `usage-sync` command to its end."""
    return subprocess.run(
        [str(usage_sync_script()), *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def standalone(tmp_path: Path) -> tuple[dict[str, str], str]:
    """The environment of an empty standalone SQLite database with its own state directory."""
    db_url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    engine = create_engine(db_url)
    metadata.create_all(engine)
    engine.dispose()
    env = {
        "USAGE_SYNC_DATABASE_URL": db_url,
        "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
        "USAGE_SYNC_LOG_FILE": str(tmp_path / "usage-sync.log"),
    }
    return env, db_url


class TestHealth:
    """Red before any run, green after one, red again when runs stop."""

    def test_red_green_red_when_runs_stop(self, tmp_path: Path) -> None:
        """No run: exit 1; after a sync: exit 0; with the last success 2 hours back: exit 1."""
        env, _ = standalone(tmp_path)
        before = usage_sync(env, tmp_path, "health")
        assert (before.returncode, before.stdout.splitlines()[-1]) == (
            1,
            "  no successful run recorded yet",
        )
        assert usage_sync(env, tmp_path, "sync").returncode == 0
        fresh = usage_sync(env, tmp_path, "health", "--json")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert json.loads(fresh.stdout)["healthy"] is True

        # Runs stop: the recorded last success is now two hours old.
        stats_file = tmp_path / "state" / "run-stats.json"
        stats = json.loads(stats_file.read_text())
        two_hours_ago = datetime.fromisoformat(stats["last_success_at"]) - timedelta(hours=2)
        stats["last_success_at"] = stats["last_run_at"] = two_hours_ago.isoformat()
        stats_file.write_text(json.dumps(stats))
        stale = usage_sync(env, tmp_path, "health", "--json")
        assert stale.returncode == 1
        [reason] = json.loads(stale.stdout)["reasons"]
        assert reason.startswith("the last successful run finished 72")
        assert reason.endswith(
            "(allowed: 1200 s, twice the 5-minute interval plus the 600 s job timeout)"
        )

    def test_a_check_that_cannot_be_made_exits_with_the_errors_code(self, tmp_path: Path) -> None:
        """Redis unreachable: not 0 or 1 but Redis's code, 8, with one line saying so."""
        env, _ = standalone(tmp_path)
        port = closed_port_url().rsplit(":", 1)[1]
        done = usage_sync(
            {**env, "USAGE_SYNC_REDIS_URL": f"redis://127.0.0.1:{port}/0"}, tmp_path, "health"
        )
        assert done.returncode == 8
        assert done.stderr.startswith("❌ Redis cannot be reached")
        assert "Traceback" not in done.stderr

    def test_a_panel_down_three_runs_in_a_row(self, tmp_path: Path) -> None:
        """Three syncs with one panel down: its streak is 3 in `schedule`, and `health` names it.

        USAGE_SYNC_HEALTH_PANEL_FAILURES=4 tolerates it; --max-panel-failures overrides that.
        """
        env, db_url = standalone(tmp_path)
        with PanelEmulator("marzban", users={"alive": 2048}) as panel:
            engine = create_engine(db_url)
            up_id = insert_panel(engine, url=panel.url, password="emulator-password", app_key=None)
            down_id = insert_panel(
                engine, url=closed_port_url(), password="emulator-password", app_key=None
            )
            reseller = insert_reseller(engine)
            insert_config(engine, reseller_id=reseller, external_username="alive", panel_id=up_id)
            insert_config(engine, reseller_id=reseller, external_username="gone", panel_id=down_id)
            engine.dispose()
            for _ in range(3):
                assert usage_sync(env, tmp_path, "sync").returncode in (0, 1)
        schedule = usage_sync(env, tmp_path, "schedule")
        assert f"  panel {up_id} (marzban): up; last success 20" in schedule.stdout
        assert (
            f"  panel {down_id} (marzban): down, failed 3 runs in a row; last success never"
            in schedule.stdout
        )
        document = json.loads(usage_sync(env, tmp_path, "schedule", "--json").stdout)
        assert document["panels"][str(down_id)]["failure_streak"] == 3

        red = usage_sync(env, tmp_path, "health")
        assert red.returncode == 1
        assert red.stdout.splitlines()[1:] == [
            f"  panel {down_id} (marzban) failed 3 runs in a row"
        ]
        tolerant = {**env, "USAGE_SYNC_HEALTH_PANEL_FAILURES": "4"}
        assert usage_sync(tolerant, tmp_path, "health").returncode == 0
        strict = usage_sync(tolerant, tmp_path, "health", "--max-panel-failures", "2")
        assert strict.returncode == 1
