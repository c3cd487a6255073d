"""The files in deploy/: systemd units pass `systemd-analyze verify`, the supervisor programs
and the environment file run real commands, and the logrotate rule parses."""

import configparser
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYSTEMD = DEPLOY / "systemd"
INSTALLED_BIN = "/opt/usage-sync/.venv/bin"
INSTALLED_ENV = "/etc/usage-sync/usage-sync.env"
VENV_BIN = str(Path(sys.executable).parent)


def systemd_analyze() -> str:
    """The systemd-analyze binary; scripts/test.sh installs Debian's `systemd` package for it."""
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: apt-get install systemd (scripts/test.sh does)"
    return found


def verify(units: list[Path]) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on `units`, with its diagnostics in plain text."""
    return subprocess.run(
        [systemd_analyze(), "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""},
    )


def installed_here(tmp_path: Path) -> list[Path]:
    """Every unit, as installed on this machine: this venv's binaries, a copy of the env file."""
    env_file = tmp_path / "usage-sync.env"
    shutil.copy(SYSTEMD / "usage-sync.env", env_file)
    units = []
    for source in sorted(SYSTEMD.glob("usage-sync*.*")):
        if source.suffix not in (".service", ".timer", ".target"):
            continue
        text = source.read_text().replace(INSTALLED_BIN, VENV_BIN)
        text = text.replace(INSTALLED_ENV, str(env_file))
        # A template is verified as one of its instances.
        name = source.name.replace("@.", "@1.")
        (tmp_path / name).write_text(text)
        units.append(tmp_path / name)
    return units


class TestSystemdUnits:
    """Every unit in deploy/systemd passes `systemd-analyze verify` without a warning."""

    def test_units_verify_cleanly(self, tmp_path: Path) -> None:
        """No diagnostics at all: unknown keys, bad sections or missing binaries would show."""
        units = installed_here(tmp_path)
        assert {u.name for u in units} >= {
            "usage-sync-run.service",
            "usage-sync-worker@1.service",
            "usage-sync-scheduler.service",
            "usage-sync-rq-cron.service",
            "usage-sync.target",
            "usage-sync-health.service",
            "usage-sync-health.timer",
        }
        done = verify(units)
        assert (done.returncode, done.stdout + done.stderr) == (0, "")

    def test_verify_catches_a_broken_unit(self, tmp_path: Path) -> None:
        """The same check reports a misplaced key and a missing binary, so it can fail."""
        [run_unit] = [u for u in installed_here(tmp_path) if u.name == "usage-sync-run.service"]
        text = run_unit.read_text().replace(f"{VENV_BIN}/usage-sync", "/nonexistent/usage-sync")
        run_unit.write_text(text.replace("[Service]\n", "[Service]\nStartLimitIntervalSec=0\n"))
        done = verify([run_unit])
        assert "Unknown key 'StartLimitIntervalSec' in section [Service]" in done.stderr
        assert "/nonexistent/usage-sync is not executable" in done.stderr
        assert done.returncode != 0

    def test_services_restart_and_read_the_environment_file(self) -> None:
        """Each long-running service restarts always and reads the shared environment file."""
        for name in ("run", "worker@", "scheduler", "rq-cron"):
            text = (SYSTEMD / f"usage-sync-{name}.service").read_text()
            assert "Restart=always" in text, name
            assert f"EnvironmentFile={INSTALLED_ENV}" in text, name


def supervisor_programs() -> dict[str, configparser.SectionProxy]:
    """The `[program:…]` sections of the supervisor configuration."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(DEPLOY / "supervisor" / "usage-sync.conf")
    return {
        section.removeprefix("program:"): parser[section]
        for section in parser.sections()
        if section.startswith("program:")
    }


class TestSupervisor:
    """The supervisor programs run real usage-sync commands with the shared environment file."""

    def test_programs_and_their_commands(self, tmp_path: Path) -> None:
        """Each program's command, run here with `--help`, is a usage-sync command that exists."""
        programs = supervisor_programs()
        assert set(programs) == {"usage-sync-worker", "usage-sync-scheduler", "usage-sync-run"}
        for name, program in programs.items():
            assert program["autorestart"] == "true", name
            command = program["command"]
            assert f". {INSTALLED_ENV}" in command, name
            match = re.search(rf"exec {re.escape(INSTALLED_BIN)}/usage-sync (\w+)'$", command)
            assert match, command
            shown = subprocess.run(
                [f"{VENV_BIN}/usage-sync", match.group(1), "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert shown.returncode == 0, shown.stderr

    def test_the_environment_file_reads_the_same_in_sh(self, tmp_path: Path) -> None:
        """Sourced as the supervisor programs do, the file sets the variables it names."""
        done = subprocess.run(
            ["/bin/sh", "-c", f'set -a; . "{SYSTEMD / "usage-sync.env"}"; env'],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": os.environ["PATH"]},
        )
        values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        assert values["USAGE_SYNC_STATE_DIR"] == "/var/lib/usage-sync"
        assert values["USAGE_SYNC_TIMEZONE"] == "Asia/Tehran"
        assert values["USAGE_SYNC_DATABASE_URL"].startswith("mysql://")


def test_logrotate_rule_parses(tmp_path: Path) -> None:
    """`logrotate --debug` reads the rule without an error (as this machine's user)."""
    log = tmp_path / "usage-sync.log"
    log.write_text("a line\n")
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    rule = (DEPLOY / "logrotate" / "usage-sync").read_text()
    rule = rule.replace("/var/log/usage-sync/usage-sync.log", str(log))
    config = tmp_path / "logrotate.conf"
    config.write_text(rule.replace("su usage-sync usage-sync", f"su {user} {group}"))
    done = subprocess.run(
        [
            str(shutil.which("logrotate")),
            "--debug",
            "--state",
            str(tmp_path / "state"),
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower()
    assert f"considering log {log}" in done.stderr
