"""`usage-sync demo`: emulated panels, a sample database, a few ticks and a sync, in seconds.

The demo needs no services. It starts one HTTP emulator per panel type on
loopback, creates an SQLite database in a temporary directory with the app's
tables and a few sample rows, and then drives the real composition root: the
scheduler ticks run the job inline (the embedded mode), the full sync is the
one `usage-sync sync` runs, and every figure printed is read back through the
store. Between ticks the emulated users use more traffic, and one user's
counter is reset on its panel, to show that the ledger settles the bytes
instead of refunding them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Final

import attrs
from sqlalchemy import Connection, Engine, insert

from usage_adapters.sql import tables as t
from usage_adapters.sql.configs import SqlConfigRepository
from usage_adapters.sql.resellers import SqlResellerRepository
from usage_core.dispatch import SchedulerTick, TickResult
from usage_core.errors import LockHeldError
from usage_core.interval import INTERVAL_SETTING_KEY
from usage_core.model import ResellerConfig
from usage_core.ports import RunHistory
from usage_entrypoints.container import Container, build_container
from usage_entrypoints.run_report import summary_headline
from usage_sandbox.emulator import EmulatorFleet, PanelEmulator, PanelKind

Echo = Callable[[str], object]

MIB: Final = 1024**2
INTERVAL: Final = "2"
TICK_MINUTES: Final = (0, 1, 2)

_ADMIN_USERNAME: Final = "demo-admin"
_ADMIN_PASSWORD: Final = "demo-password"  # noqa: S105 - a throwaway credential for the emulators
_API_KEY: Final = "demo-api-key"
_CREATED_AT: Final = datetime(2025, 1, 1, 12, 0)  # naive local time, as the app stores it
_EXPIRES_AT: Final = datetime(2030, 1, 1)

_PANELS: Final[tuple[tuple[int, PanelKind, str], ...]] = (
    (1, "eylandoo", "Eylandoo (emulated)"),
    (2, "marzban", "Marzban (emulated)"),
    (3, "marzneshin", "Marzneshin (emulated)"),
    (4, "xui", "3x-ui v2 (emulated)"),
)
_PANEL_IDS: Final[dict[PanelKind, int]] = {kind: panel_id for panel_id, kind, _ in _PANELS}


@attrs.frozen
class SampleReseller:
    """A row of `resellers` in the sample database."""

    id: int
    name: str
    type: str
    status: str
    quota_gib: int

    @property
    def synced(self) -> bool:
        """True for the resellers the sync reads: active traffic resellers."""
        return self.type == "traffic" and self.status == "active"


@attrs.frozen
class SampleConfig:
    """A row of `reseller_configs` and the user it stands for on its panel.

    Attributes:
        id: The config's id.
        reseller_id: Its reseller.
        panel: The panel type it lives on (one sample panel per type).
        username: The panel username (`panel_user_id` and `external_username`).
        stored_mib: `usage_bytes` as the app last stored it, in MiB.
        panel_mib: The panel's counter when the demo starts, in MiB.
        status: `active` or `disabled`.
    """

    id: int
    reseller_id: int
    panel: PanelKind
    username: str
    stored_mib: int
    panel_mib: int
    status: str = "active"


RESELLERS: Final = (
    SampleReseller(1, "Alpha Net", "traffic", "active", 50),
    SampleReseller(2, "Bravo VPN", "traffic", "active", 20),
    SampleReseller(3, "Charlie Link", "traffic", "suspended", 10),
    SampleReseller(4, "Delta Plans", "plan", "active", 10),
)
CONFIGS: Final = (
    SampleConfig(101, 1, "eylandoo", "alpha_eyl_1", 300, 512),
    SampleConfig(102, 1, "marzban", "alpha_mzb_1", 1000, 1024),
    SampleConfig(103, 1, "marzneshin", "alpha_mzn_1", 200, 256),
    SampleConfig(104, 1, "xui", "alpha_xui_1", 700, 768),
    SampleConfig(105, 2, "eylandoo", "bravo_eyl_1", 2048, 2048),
    SampleConfig(106, 2, "marzban", "bravo_mzb_1", 100, 128),
    SampleConfig(107, 2, "marzneshin", "bravo_mzn_1", 900, 1024, status="disabled"),
    SampleConfig(108, 2, "xui", "bravo_xui_1", 50, 64),
    SampleConfig(109, 3, "marzban", "charlie_mzb_1", 400, 512),
    SampleConfig(110, 4, "xui", "delta_xui_1", 600, 640),
)
# Users the panel admins created by hand: on the panels, but not in the database.
UNLISTED_USERS: Final[dict[PanelKind, str]] = {
    "eylandoo": "walk_in_eyl",
    "marzban": "walk_in_mzb",
    "marzneshin": "walk_in_mzn",
    "xui": "walk_in_xui",
}
IDLE_USER: Final = "bravo_eyl_1"
RESET_USER: Final = "alpha_mzb_1"
RESET_CONFIG_ID: Final = 102
RESET_AFTER_MIB: Final = 16


class DemoError(Exception):
    """Raised when the demo sees something the production code should not do."""


@attrs.frozen
class DemoPaths:
    """Where the demo keeps its files, all inside one temporary directory."""

    root: Path

    @property
    def database(self) -> Path:
        """The SQLite database."""
        return self.root / "demo.sqlite"

    @property
    def state_dir(self) -> Path:
        """The embedded mode's lock file and last-run summary."""
        return self.root / "state"

    @property
    def log_file(self) -> Path:
        """The log, unless `--verbose` sends it to stderr."""
        return self.root / "usage-sync.log"

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the database."""
        return f"sqlite:///{self.database}"

    def env(self, *, verbose: bool) -> dict[str, str]:
        """The settings the demo's container is built from."""
        env = {
            "USAGE_SYNC_DATABASE_URL": self.database_url,
            "USAGE_SYNC_STATE_DIR": str(self.state_dir),
            "USAGE_SYNC_TIMEZONE": "UTC",
            "USAGE_SYNC_LOG_LEVEL": "INFO",
            "USAGE_SYNC_HTTP_TIMEOUT": "5",
        }
        if not verbose:
            env["USAGE_SYNC_LOG_FILE"] = str(self.log_file)
        return env


def run_demo(
    *,
    keep: bool = False,
    verbose: bool = False,
    echo: Echo = print,
    started: float | None = None,
) -> int:
    """Run the demo, print what happens, clean up; the process exit code.

    `started` is the `time.perf_counter()` the reported wall time counts from
    (default: now), so that a caller can include its own start-up.
    """
    if started is None:
        started = time.perf_counter()
    paths = DemoPaths(Path(tempfile.mkdtemp(prefix="usage-sync-demo-")))
    code = 1
    try:
        with _sigterm_as_exit(), _loopback_bypasses_proxies():
            _Demo(paths, verbose=verbose, echo=echo).run()
        code = 0
    except KeyboardInterrupt:
        _error("Interrupted.")
        code = 130
    except DemoError as exc:
        _error(f"❌ Demo check failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - any failure is reported, then cleaned up
        _error(f"❌ Demo failed: {type(exc).__name__}: {exc}")
        _error(traceback.format_exc().rstrip())
    finally:
        _finish(paths, keep=keep, verbose=verbose, echo=echo)
    elapsed = time.perf_counter() - started
    if code == 0:
        echo(f"Demo finished in {elapsed:.1f} s")
    else:
        see_log = code == 1 and not (keep or verbose)
        hint = " (rerun with --keep or --verbose to see the log)" if see_log else ""
        echo(f"Demo stopped after {elapsed:.1f} s{hint}")
    return code


def _error(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _finish(paths: DemoPaths, *, keep: bool, verbose: bool, echo: Echo) -> None:
    echo("")
    echo("8. Clean-up")
    if keep:
        echo("  The emulators are stopped; the temporary directory is kept:")
        echo(f"  Kept: {paths.root}")
        echo(f"    database   {paths.database}")
        echo(f"    log        {'stderr (--verbose)' if verbose else paths.log_file}")
        echo(f"    state dir  {paths.state_dir}")
        echo("  Look around, e.g.:")
        echo(
            f"    USAGE_SYNC_DATABASE_URL={paths.database_url} "
            f"USAGE_SYNC_STATE_DIR={paths.state_dir} usage-sync schedule"
        )
        return
    shutil.rmtree(paths.root, ignore_errors=True)
    if paths.root.exists():
        echo(f"  Could not delete {paths.root}; remove it by hand")
    else:
        echo(f"  Emulators stopped; deleted {paths.root}")


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so that the clean-up runs as it does on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_PROXY_VARIABLES: Final = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@contextmanager
def _loopback_bypasses_proxies() -> Iterator[None]:
    """Keep a configured HTTP proxy away from the loopback emulators while the demo runs.

    httpx reads proxies from the environment and, unlike curl, does not exempt
    loopback addresses by itself.
    """
    if not any(os.environ.get(v) or os.environ.get(v.lower()) for v in _PROXY_VARIABLES):
        yield
        return
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    for name, value in saved.items():
        os.environ[name] = ",".join(filter(None, [value, "127.0.0.1", "localhost"]))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ------------------------------------------------------------------ the run


class _Demo:
    """One run of the demo; `run()` does everything and leaves nothing running."""

    def __init__(self, paths: DemoPaths, *, verbose: bool, echo: Echo) -> None:
        self.paths = paths
        self.verbose = verbose
        self.echo = echo
        self.fleet = EmulatorFleet(
            {kind: _emulator(kind) for kind in UNLISTED_USERS},
        )

    def run(self) -> None:
        self.echo("usage-sync demo: emulated panels, a sample database, ticks and a sync")
        with self.fleet, _quiet_logging_afterwards():
            self._show_emulators()
            container = build_container(self.paths.env(verbose=self.verbose))
            try:
                self._run_with(container)
            finally:
                container.shutdown_resources()

    def _run_with(self, container: Container) -> None:
        container.create_database.override(True)  # the demo's own SQLite file
        engine: Engine = container.engine()
        self._create_database(engine, container)
        configs: SqlConfigRepository = container.configs()
        resellers: SqlResellerRepository = container.resellers()
        before_configs = _read_configs(configs)
        before_resellers = _read_used(resellers)
        self._ticks(container)
        self._full_sync(container)
        self._show_configs(before_configs, _read_configs(configs))
        self._show_resellers(before_resellers, _read_used(resellers))
        self._show_requests()

    # -- 1. panels
    def _show_emulators(self) -> None:
        self._heading("1. Panel emulators: real HTTP servers on loopback")
        rows = [
            [kind, emulator.url, str(len(emulator.users)), ", ".join(emulator.users.names())]
            for kind, emulator in self.fleet.items()
        ]
        self._table(["panel", "url", "users", "usernames"], rows, right={2})

    # -- 2. database
    def _create_database(self, engine: Engine, container: Container) -> None:
        self._heading("2. Sample database (SQLite, the app's tables)")
        t.metadata.create_all(engine, checkfirst=True)
        with engine.begin() as conn:
            _insert_rows(conn, self.fleet)
        # The interval goes through the store, as `usage-sync settings set` writes it.
        container.settings_repository().set(INTERVAL_SETTING_KEY, INTERVAL)
        self.echo(f"  file: {self.paths.database}")
        self.echo(
            f"  {len(_PANELS)} panels pointing at the emulators (plain-text credentials, "
            f"no APP_KEY), {len(RESELLERS)} resellers, {len(CONFIGS)} configs"
        )
        self.echo(f'  setting {INTERVAL_SETTING_KEY} = "{INTERVAL}"')
        rows = [
            [str(r.id), r.name, r.type, r.status, "yes" if r.synced else "no"] for r in RESELLERS
        ]
        self._table(["id", "reseller", "type", "status", "synced"], rows, right={0})

    # -- 3. ticks
    def _ticks(self, container: Container) -> None:
        self._heading(
            f"3. Scheduler ticks (interval {INTERVAL}: due when minute % {INTERVAL} == 0)"
        )
        self.echo("  Each tick reads the interval; a due tick runs the sync inline (no Redis).")
        tick: SchedulerTick = container.tick()
        history: RunHistory = container.run_history()
        day = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
        header = ["time", "minute", "interval", "dispatched", "reason"]
        widths = [5, 6, 8, 10, 0]
        self.echo("  " + _row(header, widths))
        for minute in TICK_MINUTES:
            self._traffic_before_tick(minute)
            previous_run = history.last()
            result = tick(day + timedelta(minutes=minute))
            self._show_tick(day + timedelta(minutes=minute), result, widths)
            if result.dispatched:
                run = history.last()
                if run is None or run == previous_run:
                    msg = f"the sync dispatched at 10:{minute:02} left no summary"
                    raise DemoError(msg)
                self.echo("        └─ inline sync: " + summary_headline(run))
                _check_run(run)
            elif result.decision.dispatch:
                raise DemoError(f"the tick at 10:{minute:02} was due but not dispatched")

    def _show_tick(self, now: datetime, result: TickResult, widths: list[int]) -> None:
        decision = result.decision
        cells = [
            f"{now:%H:%M}",
            str(decision.minute),
            str(decision.interval),
            "yes" if result.dispatched else "no",
            decision.reason,
        ]
        self.echo("  " + _row(cells, widths))

    def _traffic_before_tick(self, minute: int) -> None:
        if minute == 1:
            count = self._add_traffic(64, idle={IDLE_USER, RESET_USER})
            self._event(f"{count} users used 64 MiB more ({IDLE_USER} and {RESET_USER} idle)")
        elif minute == 2:
            count = self._add_traffic(32, idle={IDLE_USER, RESET_USER})
            marzban = self.fleet["marzban"]
            marzban.users.reset_counter(RESET_USER)
            _use(marzban, RESET_USER, RESET_AFTER_MIB)
            self._event(f"{count} users used 32 MiB more")
            self._event(
                f"marzban reset {RESET_USER}'s counter to 0; then it used {RESET_AFTER_MIB} MiB"
            )

    def _add_traffic(self, mib: int, idle: set[str]) -> int:
        count = 0
        for _, emulator in self.fleet.items():
            for name in emulator.users.names():
                if name not in idle:
                    _use(emulator, name, mib)
                    count += 1
        return count

    # -- 4. full sync
    def _full_sync(self, container: Container) -> None:
        self._heading("4. One full sync (what `usage-sync sync` runs)")
        count = self._add_traffic(8, idle={IDLE_USER})
        self._event(f"{count} users used 8 MiB more")
        try:
            summary = container.sync_run().now()
        except LockHeldError as exc:
            raise DemoError("the job's unique lock is still held after the ticks") from exc
        self.echo("  " + summary_headline(summary))
        per_type = summary["per_panel_type"]
        if isinstance(per_type, Mapping):
            rows = [
                [name, *(str(counts[k]) for k in ("updated", "unchanged", "failed", "skipped"))]
                for name, counts in per_type.items()
            ]
            self._table(
                ["panel type", "updated", "unchanged", "failed", "skipped"],
                rows,
                right={1, 2, 3, 4},
            )
        _check_run(summary)

    # -- 5. results
    def _show_configs(
        self, before: Mapping[int, ResellerConfig], after: Mapping[int, ResellerConfig]
    ) -> None:
        self._heading("5. Configs: usage_bytes before the demo → after the sync (MiB)")
        names = {r.id: r.name for r in RESELLERS}
        rows = []
        for sample in CONFIGS:
            old, new = before[sample.id], after[sample.id]
            rows.append(
                [
                    str(sample.id),
                    names[sample.reseller_id],
                    new.panel_type,
                    new.status,
                    _mib(old.usage_bytes),
                    "→",
                    _mib(new.usage_bytes),
                    _mib(new.settled_bytes),
                    _config_note(sample, old, new),
                ]
            )
        self._table(
            ["id", "reseller", "panel", "status", "before", "", "after", "settled", "note"],
            rows,
            right={0, 4, 6, 7},
        )
        reset = after[RESET_CONFIG_ID]
        if reset.settled_bytes == 0:
            raise DemoError(f"config {RESET_CONFIG_ID}'s counter reset settled nothing")

    def _show_resellers(self, before: Mapping[int, int], after: Mapping[int, int]) -> None:
        self._heading("6. Resellers: traffic_used_bytes (MiB; Σ usage + settled of their configs)")
        rows = []
        for reseller in RESELLERS:
            old, new = before[reseller.id], after[reseller.id]
            if reseller.synced:
                note = "updated" if new != old else "unchanged"
            else:
                if new != old:
                    raise DemoError(f"reseller {reseller.id} ({reseller.status}) was changed")
                why = "plan reseller" if reseller.type != "traffic" else reseller.status
                note = f"untouched: {why}"
            rows.append(
                [
                    str(reseller.id),
                    reseller.name,
                    reseller.type,
                    reseller.status,
                    _mib(old),
                    "→",
                    _mib(new),
                    note,
                ]
            )
        self._table(
            ["id", "reseller", "type", "status", "before", "", "after", "note"],
            rows,
            right={0, 4, 6},
        )

    def _show_requests(self) -> None:
        self._heading("7. Requests the emulators answered")
        rows = []
        for kind, emulator in self.fleet.items():
            counts = emulator.counts
            rows.append([kind, str(counts.requests), str(counts.logins), str(counts.user_gets)])
        self._table(["panel", "requests", "logins", "user reads"], rows, right={1, 2, 3})

    # -- output helpers
    def _heading(self, text: str) -> None:
        self.echo("")
        self.echo(text)

    def _event(self, text: str) -> None:
        self.echo(f"  ~ panels: {text}")

    def _table(self, header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> None:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for line in [header, *rows]:
            cells = [
                cell.rjust(w) if i in right else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            ]
            self.echo(("  " + "  ".join(cells)).rstrip())


def _emulator(kind: PanelKind) -> PanelEmulator:
    users = {c.username: c.panel_mib * MIB for c in CONFIGS if c.panel == kind}
    users[UNLISTED_USERS[kind]] = 3 * MIB
    return PanelEmulator(
        kind,
        users=users,
        username=_ADMIN_USERNAME,
        password=_ADMIN_PASSWORD,
        api_key=_API_KEY,
        xui_version=2,
    )


def _use(emulator: PanelEmulator, username: str, mib: int) -> None:
    """Let a user use `mib` MiB more: a quarter up, the rest down."""
    upload = mib * MIB // 4
    emulator.users.add_traffic(username, upload=upload, download=mib * MIB - upload)


def _insert_rows(conn: Connection, fleet: EmulatorFleet) -> None:
    """The sample rows, written the way the PHP app writes them."""
    stamps = {"created_at": _CREATED_AT, "updated_at": _CREATED_AT}
    for panel_id, kind, name in _PANELS:
        bearer = kind != "eylandoo"
        conn.execute(
            insert(t.panels).values(
                id=panel_id,
                name=name,
                url=fleet[kind].url,
                panel_type=kind,
                username=_ADMIN_USERNAME if bearer else None,
                password=_ADMIN_PASSWORD if bearer else None,
                api_token=None if bearer else _API_KEY,
                is_active=True,
                **stamps,
            )
        )
    for reseller in RESELLERS:
        slug = reseller.name.lower().replace(" ", ".")
        conn.execute(
            insert(t.users).values(
                id=reseller.id,
                name=reseller.name,
                email=f"{slug}@example.com",
                password="$2y$12$" + "x" * 53,  # shaped like a bcrypt hash
                **stamps,
            )
        )
        used = sum(c.stored_mib for c in CONFIGS if c.reseller_id == reseller.id) * MIB
        conn.execute(
            insert(t.resellers).values(
                id=reseller.id,
                user_id=reseller.id,
                type=reseller.type,
                status=reseller.status,
                traffic_total_bytes=reseller.quota_gib * 1024 * MIB,
                traffic_used_bytes=used,
                admin_forgiven_bytes=0,
                **stamps,
            )
        )
    for config in CONFIGS:
        conn.execute(
            insert(t.reseller_configs).values(
                id=config.id,
                reseller_id=config.reseller_id,
                external_username=config.username,
                panel_user_id=config.username,
                traffic_limit_bytes=10 * 1024 * MIB,
                usage_bytes=config.stored_mib * MIB,
                expires_at=_EXPIRES_AT,
                status=config.status,
                panel_type=config.panel,
                panel_id=_PANEL_IDS[config.panel],
                created_by=config.reseller_id,
                disabled_at=_CREATED_AT if config.status == "disabled" else None,
                **stamps,
            )
        )


def _read_configs(configs: SqlConfigRepository) -> dict[int, ResellerConfig]:
    found: dict[int, ResellerConfig] = {}
    for sample in CONFIGS:
        config = configs.get(sample.id)
        if config is None:
            raise DemoError(f"config {sample.id} is missing from the database")
        found[sample.id] = config
    return found


def _read_used(resellers: SqlResellerRepository) -> dict[int, int]:
    found: dict[int, int] = {}
    for reseller in RESELLERS:
        usage = resellers.usage_of(reseller.id)
        if usage is None:
            raise DemoError(f"reseller {reseller.id} is missing from the database")
        found[reseller.id] = usage.used_bytes
    return found


def _config_note(sample: SampleConfig, old: ResellerConfig, new: ResellerConfig) -> str:
    reseller = next(r for r in RESELLERS if r.id == sample.reseller_id)
    if not reseller.synced:
        why = "plan reseller" if reseller.type != "traffic" else f"reseller {reseller.status}"
        return f"not synced: {why}"
    if sample.status != "active":
        return f"not synced: config {sample.status}"
    if new.settled_bytes > old.settled_bytes:
        return f"counter reset: {_mib(new.settled_bytes)} MiB settled, not refunded"
    if new.usage_bytes == old.usage_bytes:
        return "idle"
    return ""


def _check_run(summary: Mapping[str, object]) -> None:
    if summary.get("failed") or summary.get("skipped"):
        msg = f"a sync failed or skipped configs: {summary_headline(summary)}"
        raise DemoError(msg)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()


def _mib(value: int) -> str:
    mib = value / MIB
    return f"{mib:,.0f}" if value % MIB == 0 else f"{mib:,.2f}"


@contextmanager
def _quiet_logging_afterwards() -> Iterator[None]:
    """Remove and close the log handlers the container installs, once the demo is done.

    The log file lives in the temporary directory, which is deleted next.
    """
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
