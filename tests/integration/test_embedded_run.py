"""`usage-sync run`, the embedded scheduler, as real processes."""

import itertools
import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

from original_rows import insert_config, insert_panel, insert_reseller, insert_setting
from sqlalchemy import create_engine
from tests_support_paths import usage_sync_script

from usage_sandbox.emulator import PanelEmulator


def start_run(env: dict[str, str], log_file: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start `usage-sync run` logging JSON lines to `log_file`."""
    return subprocess.Popen(
        [str(usage_sync_script()), "run"],
        env={
            **os.environ,
            **env,
            "USAGE_SYNC_LOG_FILE": str(log_file),
            "USAGE_SYNC_LOG_FORMAT": "json",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=cwd,
    )


def job_runs(log_file: Path) -> list[tuple[datetime, datetime]]:
    """(start, end) of every sync a process ran, from its JSON log."""
    runs: list[tuple[datetime, datetime]] = []
    start = None
    for line in log_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        when = datetime.fromisoformat(record["time"])
        if record["message"] == "Starting reseller usage sync":
            start = when
        elif record["message"] == "Reseller usage sync completed" and start is not None:
            runs.append((start, when))
            start = None
    return runs


class TestEmbeddedRun:
    """Two `run` processes on one database never run the job at the same time."""

    def test_two_processes_never_overlap(self, tmp_path: Path) -> None:
        """Both tick at once; one runs the slow sync, the other skips on the shared lock."""
        db_url = f"sqlite:///{tmp_path / 'app.sqlite'}"
        with PanelEmulator("marzban", users={f"u{i}": i for i in range(6)}, latency_s=0.4) as panel:
            engine = create_engine(db_url)
            from usage_adapters.sql.tables import metadata  # noqa: PLC0415

            metadata.create_all(engine)
            panel_id = insert_panel(
                engine,
                panel_type="marzban",
                url=panel.url,
                username="admin",
                password="emulator-password",
                app_key=None,
            )
            reseller = insert_reseller(engine)
            for i in range(6):
                insert_config(
                    engine, reseller_id=reseller, external_username=f"u{i}", panel_id=panel_id
                )
            insert_setting(engine, "reseller.usage_sync_interval_minutes", "1")
            engine.dispose()
            env = {"USAGE_SYNC_DATABASE_URL": db_url, "USAGE_SYNC_STATE_DIR": str(tmp_path / "s")}
            logs = [tmp_path / "a.log", tmp_path / "b.log"]
            procs = [start_run(env, log, tmp_path) for log in logs]
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if sum(len(job_runs(log)) for log in logs if log.exists()) >= 1:
                        break
                    time.sleep(0.2)
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    proc.wait(timeout=30)
        runs = sorted(run for log in logs for run in job_runs(log))
        assert runs, [log.read_text() for log in logs]
        for (_, end), (next_start, _) in itertools.pairwise(runs):
            assert next_start >= end
        skipped = [
            log
            for log in logs
            if "holds its unique lock" in (text := log.read_text(encoding="utf-8"))
            or "was dispatched already" in text
        ]
        assert skipped, "the second process should have found the minute claimed or the lock held"
        assert all(proc.returncode == 0 for proc in procs)

    def test_fresh_default_database_is_created(self, tmp_path: Path) -> None:
        """With no settings at all, `run` creates `usage-sync.sqlite` and ticks."""
        log = tmp_path / "run.log"
        proc = start_run({"USAGE_SYNC_STATE_DIR": str(tmp_path / "s")}, log, tmp_path)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "scheduler started" not in (
                log.read_text(encoding="utf-8") if log.exists() else ""
            ):
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        assert proc.returncode == 0
        assert (tmp_path / "usage-sync.sqlite").exists()
        assert "Created the standalone database" in log.read_text(encoding="utf-8")
