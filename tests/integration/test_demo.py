"""`usage-sync demo`, run as a subprocess: emulated panels, a sample database, ticks, a sync."""

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TIME_LIMIT_S = 30


@dataclass(frozen=True)
class DemoRun:
    """One finished `usage-sync demo` process and how long it took."""

    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    def line(self, pattern: str) -> str:
        """The one output line matching `pattern` (a regex searched in each line)."""
        found = [line for line in self.stdout.splitlines() if re.search(pattern, line)]
        assert len(found) == 1, f"{len(found)} lines match {pattern!r}:\n{self.stdout}"
        return found[0]

    def cells(self, row_id: int) -> list[str]:
        """The cells of the before → after table row starting with `row_id`."""
        return self.line(rf"^\s+{row_id}\s.*→").split()


def run_demo(*args: str) -> DemoRun:
    """Run the installed console script's `demo` command, without any USAGE_SYNC_ setting."""
    script = Path(sys.executable).with_name("usage-sync")
    env = {k: v for k, v in os.environ.items() if not k.startswith("USAGE_SYNC_")}
    started = time.monotonic()
    result = subprocess.run(
        [str(script), "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S * 2,
        check=False,
    )
    elapsed = time.monotonic() - started
    return DemoRun(result.returncode, result.stdout, result.stderr, elapsed)


@pytest.fixture(scope="module")
def demo() -> DemoRun:
    """One default run of the demo, shared by the tests that only read its output."""
    return run_demo()


@pytest.fixture
def kept() -> Iterator[tuple[DemoRun, Path]]:
    """A run with --keep and the directory it kept, removed afterwards."""
    run = run_demo("--keep")
    match = re.search(r"^\s*Kept: (.+)$", run.stdout, re.MULTILINE)
    assert match, run.stdout + run.stderr
    kept_dir = Path(match.group(1).strip())
    try:
        yield run, kept_dir
    finally:
        shutil.rmtree(kept_dir, ignore_errors=True)


class TestDefaultRun:
    """Without options the demo prints its story, leaves nothing behind and is quick."""

    def test_exits_zero_quietly_and_fast(self, demo: DemoRun) -> None:
        """The demo exits 0 with nothing on stderr and finishes well under the time limit."""
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert demo.stderr == ""
        assert demo.elapsed_s < TIME_LIMIT_S
        assert re.fullmatch(r"Demo finished in \d+\.\d s", demo.stdout.splitlines()[-1])

    def test_ticks_follow_the_interval(self, demo: DemoRun) -> None:
        """With interval 2 the ticks at 10:00 and 10:02 dispatch and the one at 10:01 does not."""
        assert demo.line(r"reseller\.usage_sync_interval_minutes").endswith('= "2"')
        assert demo.line(r"^\s+10:00\s").split()[:4] == ["10:00", "0", "2", "yes"]
        assert demo.line(r"^\s+10:01\s").split()[:4] == ["10:01", "1", "2", "no"]
        assert demo.line(r"^\s+10:02\s").split()[:4] == ["10:02", "2", "2", "yes"]
        assert "minute 1 is not a multiple of the 2-minute interval" in demo.stdout
        inline_runs = [line for line in demo.stdout.splitlines() if "inline sync:" in line]
        assert len(inline_runs) == 2
        assert inline_runs[0].endswith("0 counter resets")
        assert inline_runs[1].endswith("1 counter reset")

    def test_full_sync_summary(self, demo: DemoRun) -> None:
        """The full sync reads the seven active configs of the two active traffic resellers."""
        headline = demo.line(r"^\s+2 resellers, 7 configs in [\d.]+ s: ")
        assert headline.endswith(
            "7 fetched (6 updated, 1 unchanged), 0 failed, 0 skipped, 0 counter resets"
        )
        expected = {
            "eylandoo": ["1", "1", "0", "0"],
            "marzban": ["2", "0", "0", "0"],
            "marzneshin": ["1", "0", "0", "0"],
            "xui": ["2", "0", "0", "0"],
        }
        for panel_type, counts in expected.items():
            # updated, unchanged, failed, skipped
            assert demo.line(rf"^\s+{panel_type}(\s+\d+){{4}}$").split()[1:] == counts

    def test_reset_is_settled_not_refunded(self, demo: DemoRun) -> None:
        """The reset config keeps its 1,024 MiB as settled bytes and restarts from the counter."""
        cells = demo.cells(102)
        arrow = cells.index("→")
        assert cells[arrow - 3 : arrow] == ["marzban", "active", "1,000"]
        assert cells[arrow + 1 : arrow + 3] == ["24", "1,024"]
        assert "counter reset: 1,024 MiB settled, not refunded" in demo.line(r"^\s+102\s")

    def test_configs_not_synced_are_untouched(self, demo: DemoRun) -> None:
        """The disabled config and the configs of the suspended and plan resellers keep usage."""
        assert "not synced: config disabled" in demo.line(r"^\s+107\s")
        assert "not synced: reseller suspended" in demo.line(r"^\s+109\s")
        assert "not synced: plan reseller" in demo.line(r"^\s+110\s")
        for config_id, usage in ((107, "900"), (109, "400"), (110, "600")):
            cells = demo.cells(config_id)
            arrow = cells.index("→")
            assert cells[arrow - 1] == cells[arrow + 1] == usage

    def test_reseller_totals(self, demo: DemoRun) -> None:
        """Active traffic resellers get new totals; the suspended and plan resellers do not."""
        assert " ".join(demo.cells(1)[-4:]) == "2,200 → 2,896 updated"
        assert " ".join(demo.cells(2)[-4:]) == "3,098 → 3,348 updated"
        assert " ".join(demo.cells(3)[-5:]) == "400 → 400 untouched: suspended"
        assert " ".join(demo.cells(4)[-6:]) == "600 → 600 untouched: plan reseller"

    def test_temporary_directory_is_deleted(self, demo: DemoRun) -> None:
        """The printed database's directory no longer exists once the demo has exited."""
        database = Path(demo.line(r"^\s+file: ").split("file: ", 1)[1].strip())
        assert database.name == "demo.sqlite"
        assert not database.parent.exists()
        assert f"deleted {database.parent}" in demo.stdout


class TestKeep:
    """With --keep the temporary directory stays, with its database, state and log."""

    def test_keeps_the_files(self, kept: tuple[DemoRun, Path]) -> None:
        """The kept directory holds the database, the last run and a log without credentials."""
        run, kept_dir = kept
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.elapsed_s < TIME_LIMIT_S
        assert (kept_dir / "demo.sqlite").is_file()
        assert (kept_dir / "state" / "last-run.json").is_file()
        log = (kept_dir / "usage-sync.log").read_text(encoding="utf-8")
        assert "Reseller usage sync completed" in log
        assert "demo-password" not in log
        assert "demo-api-key" not in log


class TestVerbose:
    """With --verbose the log goes to stderr instead of a file."""

    def test_logs_on_stderr(self) -> None:
        """The sync's log lines appear on stderr and the run still succeeds."""
        run = run_demo("--verbose")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "usage-sync.NOTICE: Starting reseller usage sync" in run.stderr
        assert "Demo finished in" in run.stdout
