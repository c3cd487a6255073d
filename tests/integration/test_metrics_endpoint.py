"""Prometheus metrics scraped over HTTP from a running `usage-sync run`; `usage-sync metrics`."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from original_rows import insert_config, insert_panel, insert_reseller, insert_setting
from panel_support import closed_port_url
from prometheus_client.parser import text_string_to_metric_families
from redis_support import (
    QUEUE,
    app_env,
    background,
    claimed_redis_db,
    eylandoo_panel,
    script,
    seed,
    sqlite_app_db,
)
from redis_support import usage_sync as run_usage_sync
from sqlalchemy import create_engine
from tests_support_paths import usage_sync_script

from usage_adapters.sql.tables import metadata
from usage_sandbox.emulator import PanelEmulator

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_until_a_run(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> Samples:
    """Scrape `url` until it reports a finished run whose lock is released."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        assert process.poll() is None, "usage-sync run exited"
        try:
            response = httpx.get(url, timeout=5)
        except httpx.TransportError as exc:
            last_error = exc
        else:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            samples = parse(response.text)
            runs = samples.get(("usage_sync_run_duration_seconds_count", ()), 0)
            if runs >= 1 and samples[("usage_sync_lock_held", ())] == 0:
                return samples
        time.sleep(0.3)
    raise AssertionError(f"no finished run was scraped from {url} ({last_error})")


def marzban(outcome: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of the configs counter for Marzban configs with `outcome`."""
    return ("usage_sync_configs_total", (("outcome", outcome), ("panel_type", "marzban")))


def panel_up(panel_id: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of one panel's up gauge."""
    return ("usage_sync_panel_up", (("panel_id", str(panel_id)), ("panel_type", "marzban")))


class TestMetricsEndpoint:
    """`usage-sync run` with USAGE_SYNC_METRICS_PORT serves the run's metrics over HTTP."""

    def test_scrape_of_a_running_run(self, tmp_path: Path) -> None:
        """One panel answers, one is down: counts, panel up/down, last success, lock and outbox."""
        db_url = f"sqlite:///{tmp_path / 'app.sqlite'}"
        users = {f"u{i}": 1024 * (i + 1) for i in range(3)}
        with PanelEmulator("marzban", users=users) as panel:
            engine = create_engine(db_url)
            metadata.create_all(engine)
            up_id = insert_panel(
                engine,
                panel_type="marzban",
                url=panel.url,
                password="emulator-password",
                app_key=None,
            )
            down_id = insert_panel(
                engine,
                panel_type="marzban",
                url=closed_port_url(),
                password="emulator-password",
                app_key=None,
            )
            reseller = insert_reseller(engine)
            for name in users:
                insert_config(engine, reseller_id=reseller, external_username=name, panel_id=up_id)
            for name in ("gone1", "gone2"):
                insert_config(
                    engine, reseller_id=reseller, external_username=name, panel_id=down_id
                )
            insert_setting(engine, "reseller.usage_sync_interval_minutes", "1")
            engine.dispose()
            port = free_port()
            env = {
                **os.environ,
                "USAGE_SYNC_DATABASE_URL": db_url,
                "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
                "USAGE_SYNC_LOG_FILE": str(tmp_path / "run.log"),
                "USAGE_SYNC_METRICS_PORT": str(port),
                "USAGE_SYNC_METRICS_ADDR": "127.0.0.1",
            }
            started = time.time()
            process = subprocess.Popen(
                [str(usage_sync_script()), "run"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                samples = scrape_until_a_run(f"http://127.0.0.1:{port}/metrics", process, 60)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        # A start just before a minute's turn finishes a second run before the scrape:
        # the counters add up over the runs, each run's share exact.
        runs = samples[("usage_sync_run_duration_seconds_count", ())]
        assert runs >= 1
        assert samples[marzban("updated")] == 3
        assert samples.get(marzban("unchanged"), 0) == 3 * (runs - 1)
        assert samples[marzban("failed")] == 2 * runs
        assert samples[panel_up(up_id)] == 1
        assert samples[panel_up(down_id)] == 0
        assert started <= samples[("usage_sync_last_success_timestamp_seconds", ())] <= time.time()
        assert samples[("usage_sync_remote_operations_pending", ())] == 0
        assert samples[("usage_sync_state_up", ())] == 1

        # Another process reads the same numbers from the state directory.
        printed = subprocess.run(
            [str(usage_sync_script()), "metrics"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        again = parse(printed.stdout)
        assert again[marzban("updated")] == samples[marzban("updated")]
        assert again[panel_up(down_id)] == 0
        textfile = tmp_path / "usage_sync.prom"
        subprocess.run(
            [str(usage_sync_script()), "metrics", "--output", str(textfile)],
            env=env,
            cwd=tmp_path,
            check=True,
        )
        assert parse(textfile.read_text())[marzban("failed")] == samples[marzban("failed")]


class TestMetricsAcrossProcesses:
    """With Redis, the numbers live in Redis: any process serves the runs any worker ran."""

    def test_scheduler_serves_the_runs_of_a_worker(self, tmp_path: Path) -> None:
        """A work horse runs the sync; both endpoints and `metrics` read it from Redis."""
        with (
            claimed_redis_db() as redis_db,
            eylandoo_panel() as panel,
            sqlite_app_db(tmp_path / "app.sqlite") as app_db,
        ):
            seed(app_db, panel, interval="1")
            env = app_env(redis_db.url, app_db.url, tmp_path)
            port, worker_port = free_port(), free_port()
            served = {
                **env,
                "USAGE_SYNC_METRICS_PORT": str(port),
                "USAGE_SYNC_METRICS_ADDR": "127.0.0.1",
            }
            worker_served = {**served, "USAGE_SYNC_METRICS_PORT": str(worker_port)}
            with (
                background(
                    [script("usage-sync"), "worker"],
                    env=worker_served,
                    output=tmp_path / "worker.out",
                ) as worker,
                background(
                    [script("usage-sync"), "scheduler"],
                    env=served,
                    output=tmp_path / "scheduler.out",
                ) as scheduler,
            ):
                ticked = run_usage_sync("tick", "--json", env=env)
                assert json.loads(ticked.stdout)["dispatched"] is True, ticked.stderr
                samples = scrape_until_a_run(
                    f"http://127.0.0.1:{port}/metrics", scheduler.process, 60
                )
                assert worker.process.poll() is None
                # The worker serves the same numbers, though its work horse ran the sync.
                from_worker = scrape_until_a_run(
                    f"http://127.0.0.1:{worker_port}/metrics", worker.process, 30
                )
            printed = run_usage_sync("metrics", env=env)
            stored = redis_db.client.get(f"usage-sync:{QUEUE}:run-stats")
        eylandoo_updated = (
            "usage_sync_configs_total",
            (("outcome", "updated"), ("panel_type", "eylandoo")),
        )
        assert samples[eylandoo_updated] == 1
        assert (
            samples[("usage_sync_panel_up", (("panel_id", "10"), ("panel_type", "eylandoo")))] == 1
        )
        assert parse(printed.stdout)[eylandoo_updated] == 1
        assert from_worker[eylandoo_updated] == 1
        assert stored is not None
        assert json.loads(stored)["runs"] >= 1
