"""The benchmark, run small: it verifies every row it synced, and fails on a wrong one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "bench" / "sync_bench.py"
CONFIGS = 2000


def run_benchmark(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`bench/sync_bench.py --configs 2000 ARGS`, its files under `tmp_path`."""
    return subprocess.run(
        [sys.executable, str(BENCHMARK), "--configs", str(CONFIGS), *args],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_a_small_run_verifies_every_row(tmp_path: Path) -> None:
    """Every usage, ledger key and reseller total is checked and right, and the run exits 0."""
    done = run_benchmark(tmp_path, "--json")

    assert done.returncode == 0, done.stderr
    verified = json.loads(done.stdout)["verified"]
    assert verified == {
        "ok": True,
        "configs": f"{CONFIGS}/{CONFIGS}",
        "resellers": f"{CONFIGS // 100}/{CONFIGS // 100}",
        "wrong_rows": 0,
        "wrong": [],
    }


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
    done = run_benchmark(tmp_path, "--corrupt-one-row", corruption)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "VERIFICATION FAILED: 1 wrong rows" in done.stderr
    assert named in done.stderr
