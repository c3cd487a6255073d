"""Runs killed with SIGKILL: nothing is lost or counted twice, and the next run converges."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fault_support import FaultWorld, fault_world
from redis_support import script, subprocess_env
from sqlalchemy import text

from usage_sandbox.emulator import Fault

pytestmark = pytest.mark.timeout(240)


def sync(world: FaultWorld, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`usage-sync sync --json` to completion."""
    return subprocess.run(
        [script("usage-sync"), "sync", "--json"],
        env=subprocess_env(world.env(USAGE_SYNC_STATE_DIR=str(tmp_path / "state"))),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def written(world: FaultWorld) -> int:
    """Configs whose usage has been written."""
    with world.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM reseller_configs WHERE usage_bytes > 0")
            ).scalar_one()
        )


def test_sync_killed_mid_run_then_converges(original_db, tmp_path: Path) -> None:
    """`usage-sync sync` killed after one panel's writes: the next run makes every ledger exact."""
    with fault_world(original_db.engine, original_db.url, per_panel=60) as world:
        # The other panels answer their listings slowly, so the kill lands between writes.
        for kind in ("marzban", "marzneshin", "xui"):
            world.panels[kind].set_list_fault(1, Fault.slow(3.0))
        env = world.env(USAGE_SYNC_STATE_DIR=str(tmp_path / "state"))
        process = subprocess.Popen(
            [script("usage-sync"), "sync"],
            env=subprocess_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while written(world) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        assert 0 < written(world) < len(world.configs)
        world.assert_never_over()

        for panel in world.panels.values():
            panel.clear_faults()
        # The killed process's lock is not waited out: its owner is gone.
        done = sync(world, tmp_path)
        assert done.returncode == 0, done.stderr
        world.assert_converged()

        world.grow()
        done = sync(world, tmp_path)
        assert done.returncode == 0, done.stderr
        world.assert_converged()
        # A reset between two syncs (traffic used before it was seen by the last sync).
        kind, name = world.configs[next(iter(world.configs))]
        world.panels[kind].users.reset_counter(name)
        world.panels[kind].users.add_traffic(name, download=1000)
        done = sync(world, tmp_path)
        assert done.returncode == 0, done.stderr
        world.assert_converged()
