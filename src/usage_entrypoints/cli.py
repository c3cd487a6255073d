"""The `usage-sync` command line."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from usage_core.errors import BrokerUnavailableError, MissingTablesError, UsageSyncError
from usage_core.interval import INTERVAL_SETTING_KEY, parse_interval
from usage_entrypoints import sync_one_output as out
from usage_entrypoints.collector import rare_collections
from usage_entrypoints.console import keep_per_config_lines_off_the_terminal, progress_bar
from usage_entrypoints.exit_codes import ExitCode, exit_code_for, exit_code_of_outcome
from usage_entrypoints.problems import explain
from usage_entrypoints.run_report import enforcement_lines, summary_lines
from usage_entrypoints.setting_keys import plural, unknown_key_warning
from usage_entrypoints.settings import ENVIRONMENT

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from usage_entrypoints.container import Container

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="usage-sync",
    help="Keep VPN panel traffic usage in sync with the reseller billing database.",
    # "\b" keeps click from re-wrapping the table.
    epilog="Environment:\n\n\b\n" + "\n".join(f"{name:<29} {what}" for name, what in ENVIRONMENT),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
settings_app = typer.Typer(help="Read and write the app's `settings` table.", no_args_is_help=True)
db_app = typer.Typer(help="Manage a standalone database.", no_args_is_help=True)
logins_app = typer.Typer(help="The panel logins kept between runs.", no_args_is_help=True)
app.add_typer(settings_app, name="settings")
app.add_typer(db_app, name="db")
app.add_typer(logins_app, name="logins")


@dataclass
class _Invocation:
    """The options given before the command, for the whole of one invocation."""

    debug: bool = False


_invocation = _Invocation()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # noqa: PLC0415

        typer.echo(f"usage-sync {version('usage-sync')}")
        raise typer.Exit


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback behind an error.")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Keep VPN panel traffic usage in sync with the reseller billing database."""
    _invocation.debug = debug


def _fail(message: str, code: int = ExitCode.SOME_FAILED) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _debugging() -> bool:
    """True with `--debug` or USAGE_SYNC_LOG_LEVEL=DEBUG: errors come with their traceback."""
    level = os.environ.get("USAGE_SYNC_LOG_LEVEL", "").strip().upper()
    return _invocation.debug or level == "DEBUG"


def _fail_with(error: UsageSyncError) -> NoReturn:
    """End the command with the error's one or two lines and its exit code."""
    if _debugging():
        traceback.print_exception(error)
    for line in explain(error):
        typer.echo(line, err=True)
    raise typer.Exit(exit_code_for(error))


@contextmanager
def _container(*, create_database: bool = False) -> Iterator[Container]:
    """The composition root for one command, its resources shut down afterwards.

    Errors the user can act on end the command with one or two lines, chosen by
    type, and the exit code of their kind. `create_database` lets a missing
    SQLite file be created.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415
    from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: PLC0415

    from usage_entrypoints.container import build_container  # noqa: PLC0415 - keeps --help fast

    try:
        container = build_container(os.environ)
    except UsageSyncError as exc:
        _fail_with(exc)
    if create_database:
        container.create_database.override(True)
    try:
        yield container
    except UsageSyncError as exc:
        _fail_with(exc)
    except (RedisConnectionError, RedisTimeoutError) as exc:  # Redis went away after the start
        _fail_with(BrokerUnavailableError(f"Redis cannot be reached: {exc}"))
    finally:
        container.shutdown_resources()


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


@app.command("sync-one")
def sync_one(
    config: Annotated[
        str | None, typer.Option("--config", help="The ID of the config to sync.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Manually sync usage for one reseller config (diagnostic tool)."""
    if config is None or not config.strip():
        _fail("Please provide a config ID using --config={id}")
    if not config.strip().isdigit():
        _fail(f"Config ID must be a positive whole number, not {config!r}")
    config_id = int(config)
    with _container() as container:
        use_case = container.sync_one()
        located = use_case.locate(config_id)
        if not located.found:
            if as_json:
                typer.echo(json.dumps(out.report_document(located), indent=2))
            _fail(f"Config with ID {config_id} not found")
        if not as_json:
            _echo_lines(out.header_lines(located))
        try:
            report = use_case.sync(located)
        except UsageSyncError:
            raise
        except Exception as exc:  # the diagnostic reports any failure, as the original did
            logger.exception("sync-one failed for config %s", config_id)
            _fail(f"❌ Exception occurred: {type(exc).__name__}: {exc}")
        if as_json:
            typer.echo(json.dumps(out.report_document(report), indent=2))
        else:
            _echo_lines(out.result_lines(report))
    if not report.ok:
        raise typer.Exit(1)


@settings_app.command("get")
def settings_get(key: Annotated[str, typer.Argument(help="The setting's key.")]) -> None:
    """Print the raw value stored under KEY (exit 1 when there is none)."""
    with _container() as container:
        value = container.settings_repository().get(key)
    if value is None:
        _fail(f"{key} is not set")
    typer.echo(value)
    if key == INTERVAL_SETTING_KEY:
        _explain_interval(value)


# A value such as -4 is a value, not an option.
@settings_app.command("set", context_settings={"ignore_unknown_options": True})
def settings_set(
    key: Annotated[str, typer.Argument(help="The setting's key.")],
    value: Annotated[str, typer.Argument(help="The value to store.")],
) -> None:
    """Store VALUE under KEY, inserting or replacing the row."""
    warning = unknown_key_warning(key)
    if warning:
        typer.echo(warning, err=True)
    with _container() as container:
        container.settings_repository().set(key, value)
    typer.echo(f"{key} = {value}")
    if key == INTERVAL_SETTING_KEY:
        _explain_interval(value)


@logins_app.command("forget")
def logins_forget(
    panel: Annotated[
        int | None, typer.Option("--panel", help="Only this panel id (default: every panel).")
    ] = None,
) -> None:
    """Drop the kept logins, so that each panel is logged in to afresh by the next run."""
    with _container() as container:
        ids = [panel] if panel is not None else [row.id for row in container.panels().all()]
        try:
            keeper = container.logins()
            for panel_id in ids:
                keeper.forget_panel(panel_id)
        except Exception as exc:  # noqa: BLE001 - Redis or the state directory, said by type
            _fail(f"❌ Could not forget the kept logins ({type(exc).__name__})")
    typer.echo(f"forgot the kept logins of {len(ids)} panel{'' if len(ids) == 1 else 's'}")


def _explain_interval(raw: str) -> None:
    setting = parse_interval(raw)
    if setting.problem:
        typer.echo(
            f"warning: {setting.problem}; the sync runs every {plural(setting.minutes, 'minute')}",
            err=True,
        )
    elif setting.clamped:
        every = plural(setting.minutes, "minute")
        typer.echo(f"note: clamped to {every} (allowed: 1 to 5)", err=True)


@db_app.command("init")
def db_init() -> None:
    """Create the app's tables in a standalone database (existing tables are kept)."""
    from usage_adapters.sql.errors import database_errors  # noqa: PLC0415 - keeps --help fast
    from usage_adapters.sql.tables import metadata  # noqa: PLC0415

    with _container(create_database=True) as container, database_errors():
        engine = container.engine()
        existing = set(metadata.tables) & set(_table_names(engine))
        metadata.create_all(engine, checkfirst=True)
    created = sorted(set(metadata.tables) - existing)
    if created:
        typer.echo(f"Created tables: {', '.join(created)}")
    else:
        typer.echo("All tables already exist; nothing to do")


def _table_names(engine: Engine) -> list[str]:
    from sqlalchemy import inspect  # noqa: PLC0415

    return list(inspect(engine).get_table_names())


def _parse_now(text: str | None, container: Container) -> datetime:
    if text is None:
        return container.clock().now()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--now must be an ISO 8601 date and time, not {text!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=container.settings().tz)
    return parsed


@app.command("tick")
def tick(
    now: Annotated[
        str | None,
        typer.Option("--now", help="Decide as if at this ISO 8601 time (default: now)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide without dispatching.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Run one scheduler tick: read the interval, decide, and dispatch the sync when due."""
    with _container() as container:
        result = container.tick()(_parse_now(now, container), dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    decision = result.decision
    verdict = "dispatched" if result.dispatched else "not dispatched"
    typer.echo(
        f"minute {decision.minute}, interval {decision.interval}: {verdict} ({result.reason})"
    )


@app.command("sync")
def sync(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="On a terminal, show each config's lines too.")
    ] = False,
) -> None:
    """Run one full sync now, holding the job's unique lock while it runs.

    Exit 0 when every config synced or was skipped for a stated reason, 1 when
    some failed, 2 and up when the run could not happen (see docs/usage.md).
    """
    with _container() as container:
        _check_database(container)
        show_bar = not as_json and sys.stdout.isatty()
        if show_bar and not verbose:
            keep_per_config_lines_off_the_terminal()
        with progress_bar(show_bar, sys.stdout) as progress, rare_collections():
            document = container.sync_run().now(progress)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _echo_lines(summary_lines(document))
    raise typer.Exit(exit_code_of_outcome(_failures(document)))


def _failures(summary: Mapping[str, object]) -> int:
    """Failed configs, plus one when the enforcement pass after the sync failed."""
    enforcement = summary.get("enforcement")
    failed = summary.get("failed")
    enforcement_failed = isinstance(enforcement, Mapping) and "error" in enforcement
    return (failed if isinstance(failed, int) else 0) + int(enforcement_failed)


@app.command("enforce")
def enforce(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Run one quota enforcement pass from what the database holds now (no usage fetch).

    Exit 0 when done, 1 when some panel operations failed, 2 and up when the pass
    could not happen.
    """
    with _container() as container:
        _check_database(container)
        report = container.sync_run().enforce_now(dry_run=dry_run)
    document = report.as_dict()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _echo_lines(enforcement_lines(document))
    raise typer.Exit(exit_code_of_outcome(report.remote.failed))


def _check_database(container: Container, *, create_standalone: bool = False) -> None:
    """Connect and look for the app's tables, so that an unusable database is reported
    before any work starts; `create_standalone` creates the default SQLite database."""
    from usage_adapters.sql.errors import database_errors  # noqa: PLC0415
    from usage_adapters.sql.tables import metadata  # noqa: PLC0415
    from usage_entrypoints.settings import DEFAULT_DATABASE_URL  # noqa: PLC0415

    standalone = create_standalone and container.settings().database_url == DEFAULT_DATABASE_URL
    if standalone:
        container.create_database.override(True)
    engine = container.engine()
    with database_errors():
        missing = sorted(set(metadata.tables) - set(_table_names(engine)))
        if missing and standalone:
            metadata.create_all(engine, checkfirst=True)
            logger.info("Created the standalone database %s", engine.url.database)
        elif missing:
            raise MissingTablesError(f"missing: {', '.join(missing)}")


@app.command("run")
def run() -> None:
    """Tick every minute in the foreground; without Redis the job runs inline."""
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from usage_entrypoints.embedded import run_loop  # noqa: PLC0415
    from usage_entrypoints.metrics import serve_if_configured as serve_metrics  # noqa: PLC0415

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("Received signal %s; stopping after the current tick", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with _container() as container:
        _check_database(container, create_standalone=True)
        serve_metrics(container)
        settings = container.settings()
        where = "inline" if settings.embedded else f"on RQ queue {settings.queue_name!r}"
        logger.info(
            "usage-sync scheduler started: ticking every minute, jobs run %s (timezone %s)",
            where,
            settings.timezone,
        )
        tick_use_case = container.tick()
        run_loop(tick_use_case, container.clock(), stop.wait, stop.is_set)
    logger.info("usage-sync scheduler stopped")


def _require_redis(container: Container, command: str) -> None:
    if container.settings().embedded:
        _fail(
            f"usage-sync {command} needs USAGE_SYNC_REDIS_URL; "
            "without Redis, `usage-sync run` schedules and runs the sync by itself",
            2,
        )


@app.command("worker")
def worker(
    burst: Annotated[bool, typer.Option("--burst", help="Stop when the queue is empty.")] = False,
) -> None:
    """Run an RQ worker on the project's queue (needs USAGE_SYNC_REDIS_URL).

    A Redis outage does not end it: it waits and starts working again.
    """
    import threading  # noqa: PLC0415

    from rq import Queue, Worker  # noqa: PLC0415

    from usage_entrypoints.metrics import serve_if_configured as serve_metrics  # noqa: PLC0415
    from usage_entrypoints.rq_runtime import keep_working  # noqa: PLC0415

    with _container() as container:
        _require_redis(container, "worker")
        serve_metrics(container)
        redis = container.redis()
        name = container.settings().queue_name
        keep_working(
            lambda: Worker([Queue(name, connection=redis)], connection=redis),
            burst=burst,
            stop=threading.Event(),
        )


@app.command("scheduler")
def scheduler(
    interval: Annotated[
        int, typer.Option("--interval", help="Seconds between checks for due jobs.")
    ] = 5,
) -> None:
    """Run rq-scheduler with a `* * * * *` entry that enqueues the tick.

    The entry is re-created whenever Redis has lost it, and a Redis outage
    does not end the scheduler.
    """
    import threading  # noqa: PLC0415

    from usage_entrypoints.metrics import serve_if_configured as serve_metrics  # noqa: PLC0415
    from usage_entrypoints.rq_runtime import (  # noqa: PLC0415
        keep_scheduling,
        quiet_rq_scheduler,
        stop_on_signals,
    )

    quiet_rq_scheduler()
    with _container() as container:
        _require_redis(container, "scheduler")
        serve_metrics(container)
        name = container.settings().queue_name
        redis = container.redis()

        def make_scheduler() -> object:
            from rq_scheduler import Scheduler  # noqa: PLC0415

            return Scheduler(queue_name=name, connection=redis, interval=interval)

        stop = threading.Event()
        stop_on_signals(stop)
        logger.info("rq-scheduler started: the tick is queued on %r every minute", name)
        keep_scheduling(make_scheduler, name, interval=interval, stop=stop)


@app.command("schedule")
def schedule(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show the interval, the next dispatch times, the lock and the last run."""
    from usage_core.dispatch import read_interval  # noqa: PLC0415
    from usage_core.enforcement.settings import (  # noqa: PLC0415
        ENFORCEMENT_MODE,
        read_enforcement_settings,
    )
    from usage_core.run_stats import RunStats  # noqa: PLC0415
    from usage_core.schedule import next_dispatch_times  # noqa: PLC0415
    from usage_entrypoints.health_check import panel_lines  # noqa: PLC0415

    with _container() as container:
        settings = container.settings()
        setting = read_interval(container.settings_repository())
        now = container.clock().now()
        upcoming = next_dispatch_times(now, setting.minutes, settings.tz, 5)
        remaining = container.lock().remaining_seconds()
        last = container.run_history().last()
        stats = RunStats.from_dict(container.run_stats().load())
        enforcement = read_enforcement_settings(container.settings_repository())
        pending = len(container.enforcement_store().pending_operations())
    document = {
        "setting_key": INTERVAL_SETTING_KEY,
        "raw": setting.raw,
        "interval": setting.minutes,
        "problem": setting.problem,
        "timezone": settings.timezone,
        "mode": "embedded" if settings.embedded else "redis",
        "next_dispatches": [t.isoformat() for t in upcoming],
        "lock_held": remaining is not None,
        "lock_remaining_seconds": round(remaining, 1) if remaining is not None else None,
        "last_run": last,
        "enforcement": enforcement.mode.value,
        "remote_operations_pending": pending,
        "last_success_at": stats.last_success_at,
        "panels": {pid: streak.as_dict() for pid, streak in stats.panels.items()},
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    raw = "not set" if setting.raw is None else repr(setting.raw)
    lines = [
        f"Interval ({INTERVAL_SETTING_KEY}): {raw} -> every {plural(setting.minutes, 'minute')}",
        f"Timezone: {settings.timezone}    Mode: {document['mode']}",
        f"Quota enforcement ({ENFORCEMENT_MODE}): {enforcement.mode.value}; "
        f"{pending} remote operation{'' if pending == 1 else 's'} pending",
        "Next dispatches:",
        *(f"  {t:%Y-%m-%d %H:%M %Z}" for t in upcoming),
        "Unique lock: "
        + (f"held, expires in {remaining:.0f} s" if remaining is not None else "free"),
    ]
    if setting.problem:
        lines.insert(1, f"  warning: {setting.problem}; the default applies")
    if last:
        lines += [f"Last run: finished {last.get('finished_at')}", *summary_lines(last)]
    else:
        lines.append("Last run: none recorded yet")
    lines.append(f"Last successful run: {stats.last_success_at or 'none recorded yet'}")
    if stats.panels:
        lines += ["Panels:", *panel_lines(stats)]
    _echo_lines(lines)


@app.command("health")
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    max_panel_failures: Annotated[
        int | None,
        typer.Option(
            "--max-panel-failures",
            min=1,
            help="Runs in a row a panel may fail (default: USAGE_SYNC_HEALTH_PANEL_FAILURES, 3).",
        ),
    ] = None,
) -> None:
    """Exit 0 when runs succeed on time, the lock is not stuck and every panel answers; else 1.

    For a Docker HEALTHCHECK or a systemd timer; the reasons are printed. Exit 2 and up: the
    check could not be made (database or Redis unusable), with the code of that error.
    """
    from usage_entrypoints.health_check import check_health, health_lines  # noqa: PLC0415

    with _container() as container:
        report = check_health(container, max_panel_failures)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _echo_lines(health_lines(report))
    if not report.healthy:
        raise typer.Exit(ExitCode.SOME_FAILED)


@app.command("metrics")
def metrics(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", help="Write to this file atomically (node-exporter's textfile collector)."
        ),
    ] = None,
) -> None:
    """Print the Prometheus metrics of the recorded runs, read from Redis or the state directory."""
    from usage_entrypoints.metrics import exposition, write_textfile  # noqa: PLC0415

    with _container() as container:
        text = exposition(container)
    if output is None:
        sys.stdout.write(text.decode())
        return
    try:
        write_textfile(output, text)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}", ExitCode.NOT_RUN)


@app.command("demo")
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary directory and print its paths.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show the log on stderr instead of a log file.")
    ] = False,
) -> None:
    """Run emulated panels and a sample database through a few ticks and a sync, in seconds."""
    import time  # noqa: PLC0415

    started = time.perf_counter()
    from usage_sandbox.demo import run_demo  # noqa: PLC0415 - keeps --help fast

    code = run_demo(keep=keep, verbose=verbose, echo=typer.echo, started=started)
    if code:
        raise typer.Exit(code)


@app.command("emulate")
def emulate(
    panel: Annotated[
        str,
        typer.Option(
            "--panel", help="eylandoo, marzban, marzneshin, pasarguard, hiddify, remnawave or xui."
        ),
    ] = "marzban",
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free one).")] = 0,
    users: Annotated[int, typer.Option("--users", help="How many users to create.")] = 10,
    grow_mib: Annotated[
        int, typer.Option("--grow-mib", help="MiB each user downloads every --every seconds.")
    ] = 5,
    every_s: Annotated[float, typer.Option("--every", help="Seconds between growth steps.")] = 10,
    username: Annotated[str, typer.Option("--admin", help="Admin username.")] = "admin",
    password: Annotated[str, typer.Option("--password", help="Admin password.")] = "admin-pass",  # noqa: S107 - the emulator's own throwaway login
    api_key: Annotated[
        str, typer.Option("--api-key", help="Eylandoo API key, Remnawave API token.")
    ] = "api-key",
    xui_version: Annotated[int, typer.Option("--xui-version", help="3x-ui API: 2 or 3.")] = 2,
    realistic: Annotated[
        bool,
        typer.Option(
            "--realistic",
            help="Take as long as the real panel to serialize users (Marzban: ~11.5 ms each).",
        ),
    ] = False,
) -> None:
    """Serve an emulated panel on loopback, to point a database at while trying usage-sync."""
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from usage_sandbox.emulate import serve  # noqa: PLC0415 - the sandbox is loaded on demand
    from usage_sandbox.emulator import PANEL_KINDS  # noqa: PLC0415

    if panel not in PANEL_KINDS:
        _fail(f"--panel must be one of {', '.join(PANEL_KINDS)}, not {panel!r}", 2)
    if users < 0 or every_s <= 0 or xui_version not in (2, 3):
        _fail("--users must be >= 0, --every > 0 and --xui-version 2 or 3", 2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        serve(
            panel,
            port=port,
            users=users,
            grow_mib=grow_mib,
            every_s=every_s,
            username=username,
            password=password,
            api_key=api_key,
            xui_version=xui_version,
            stop=stop,
            echo=typer.echo,
            realistic=realistic,
        )
    except OSError as exc:
        _fail(f"cannot serve on port {port}: {exc.strerror or exc}", 2)


def main() -> None:
    """Run the command line."""
    app()
