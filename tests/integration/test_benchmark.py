"""The benchmark, run small: it verifies every row it synced, and fails on a wrong one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis_support import claimed_redis_db

BENCHMARK = Path(__file__).resolve().parents[2] / "bench" / "sync_bench.py"
CONFIGS = 2000


def run_script(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`bench/NAME ARGS`, its files under `tmp_path`."""
    return subprocess.run(
        [sys.executable, str(BENCHMARK.with_name(name)), *args],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def run_benchmark(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`bench/sync_bench.py --configs 2000 ARGS`, its files under `tmp_path`."""
    return run_script(tmp_path, BENCHMARK.name, "--configs", str(CONFIGS), *args)


def test_a_small_run_verifies_every_row(tmp_path: Path) -> None:
    """First, 10 %-changed and unchanged runs each verify every row and sit beside a floor."""
    done = run_benchmark(tmp_path, "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    runs = report["runs"]
    assert list(runs) == ["first", "changed", "unchanged"]
    for run in runs.values():
        assert run["verified"] == {
            "ok": True,
            "configs": f"{CONFIGS}/{CONFIGS}",
            "resellers": f"{CONFIGS // 100}/{CONFIGS // 100}",
            "wrong_rows": 0,
            "wrong": [],
        }
        assert run["ours"]["cpu_s"] > 0
        assert run["floor"]["cpu_s"] > 0
        ratio = run["ours"]["cpu_s"] / run["floor"]["cpu_s"]
        assert run["cpu_ratio"] == pytest.approx(ratio, abs=0.02)
        assert run["emulators"]["cpu_s"] >= 0
        assert all(panel["list_pages"] >= 1 for panel in run["requests"].values())
        # Three floors and three syncs by default, each sync on the restored database; medians.
        repeats = run["repeats"]
        assert len(repeats["ours_cpu_s"]) == len(repeats["floor_cpu_s"]) == 3
        assert run["ours"]["cpu_s"] == sorted(repeats["ours_cpu_s"])[1]
        assert run["floor"]["cpu_s"] == sorted(repeats["floor_cpu_s"])[1]
    written = {name: run["floor"]["writes"] for name, run in runs.items()}
    updated = {name: run["ours"]["summary"]["updated"] for name, run in runs.items()}
    assert written == updated == {"first": CONFIGS, "changed": CONFIGS // 10, "unchanged": 0}


@pytest.mark.parametrize(
    ("corruption", "named"),
    [
        ("usage", "config 1001: usage_bytes"),
        ("ledger", "config 1001: meta.usage_sync_last_counter"),
        ("total", "reseller 1: traffic_used_bytes"),
    ],
)
def test_a_corrupted_row_fails_the_run(tmp_path: Path, corruption: str, named: str) -> None:
    """One value tampered with after the sync makes the run exit 1, naming that row alone."""
    done = run_benchmark(tmp_path, "--runs", "first", "--corrupt-one-row", corruption)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "VERIFICATION FAILED after the first run: 1 wrong rows" in done.stderr
    assert named in done.stderr


def test_the_parts_benchmark_times_every_part(tmp_path: Path) -> None:
    """`bench/parts_bench.py` runs small, times each part and weighs the plan of every config."""
    done = run_script(tmp_path, "parts_bench.py", "--configs", "500")
    assert done.returncode == 0, done.stderr
    assert "every row written (SyncAllUsage._apply)" in done.stdout
    assert "per-config lines at INFO" in done.stdout
    assert "the plan of 500 synced configs holds" in done.stdout


def test_the_listing_decode_benchmark_decodes_every_way(tmp_path: Path) -> None:
    """`bench/listing_decode_bench.py` runs small and prints each decode's CPU and memory."""
    done = run_script(tmp_path, "listing_decode_bench.py", "--clients", "500")
    assert done.returncode == 0, done.stderr
    for way in ("json.loads", "read as decoded", "settings unread"):
        assert way in done.stdout


def test_a_fanned_out_run_times_each_of_its_jobs(tmp_path: Path) -> None:
    """Drained by two workers, the run verifies and reports each job's wall and CPU seconds."""
    with claimed_redis_db() as redis:
        done = run_benchmark(
            tmp_path,
            "--json",
            "--workers",
            "2",
            "--runs",
            "first",
            "--repeat",
            "1",
            "--redis-url",
            redis.url,
        )

    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)["runs"]["first"]
    assert run["verified"]["ok"] is True
    jobs = run["fan_out"]["per_job"]
    assert sorted(jobs) == ["dispatch", "panel 1", "panel 2", "panel 3", "panel 4", "totals"]
    assert all(job["wall_s"] > 0 and job["cpu_s"] >= 0 for job in jobs.values())
    assert all(job["cpu_s"] > 0 for name, job in jobs.items() if name.startswith("panel"))
    slowest = max(job["wall_s"] for name, job in jobs.items() if name.startswith("panel"))
    assert run["fan_out"]["two_machines_s"] >= slowest
