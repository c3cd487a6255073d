"""The composition root: the one place that knows which adapter serves which port."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dependency_injector import containers, providers
from redis import Redis
from rq.timeouts import JobTimeoutException
from sqlalchemy import Engine

from usage_adapters.credentials import credential_reader
from usage_adapters.file_lock import FileDispatchSlots, FileLock
from usage_adapters.inline_queue import InlineJobQueue
from usage_adapters.login_stores import (
    FileLoginStore,
    RedisLoginStore,
    app_key_secret,
    file_secret,
    redis_secret,
)
from usage_adapters.panels.clients import HttpxPanelClients
from usage_adapters.panels.kept_logins import LoginKeeper
from usage_adapters.redis_connection import connect_redis
from usage_adapters.redis_lock import RedisDispatchSlots, RedisLock
from usage_adapters.rq_queue import RqFanOut, RqJobQueue
from usage_adapters.run_history import (
    FileDocument,
    FileRunHistory,
    RedisDocument,
    RedisRunHistory,
)
from usage_adapters.sql.configs import SqlConfigRepository
from usage_adapters.sql.enforcement import SqlEnforcementStore
from usage_adapters.sql.engine import create_store_engine
from usage_adapters.sql.panels import CredentialReader, SqlPanelRepository
from usage_adapters.sql.resellers import SqlResellerRepository
from usage_adapters.sql.settings import SqlSettingsRepository
from usage_core.dispatch import JOB_NAME, SchedulerTick
from usage_core.enforcement.remote import RemoteOperations
from usage_core.enforcement.run import EnforceQuotas
from usage_core.errors import ConfigurationError
from usage_core.ports import DispatchSlots, JobQueue, Lock, RunHistory, RunStatsStore
from usage_core.run import SyncRun
from usage_core.sync_all import SyncAllUsage
from usage_core.sync_one import SyncOneConfig
from usage_entrypoints.clock import SystemClock, SystemPace
from usage_entrypoints.job_names import FINISH_SYNC_JOB, SYNC_JOB, SYNC_PANEL_JOB
from usage_entrypoints.settings import Settings


def _engine(url: str, create_sqlite_file: bool) -> Iterator[Engine]:
    engine = create_store_engine(url, create_sqlite_file=create_sqlite_file)
    try:
        yield engine
    finally:
        engine.dispose()


def _redis(settings: Settings) -> Iterator[Redis]:
    if settings.redis_url is None:
        msg = "USAGE_SYNC_REDIS_URL is not set"
        raise RuntimeError(msg)
    client = connect_redis(settings.redis_url.reveal())
    try:
        yield client
    finally:
        client.close()


def _credentials(settings: Settings) -> CredentialReader:
    return credential_reader(settings.app_key.reveal() if settings.app_key else None)


def _key(settings: Settings, name: str) -> str:
    """A Redis key of this deployment (its queue name tells deployments apart)."""
    return f"usage-sync:{settings.queue_name}:{name}"


def _panel_lock(redis: Redis, settings: Settings, panel_id: int) -> RedisLock:
    return RedisLock(redis, _key(settings, f"unique:panel:{panel_id}"))


def _redis_logins(redis: Redis, settings: Settings) -> LoginKeeper:
    """Logins kept in Redis, sealed with the app key or a key kept beside them."""
    secret = (
        app_key_secret(settings.app_key.reveal())
        if settings.app_key
        else redis_secret(redis, _key(settings, "login-key"))
    )
    return LoginKeeper(RedisLoginStore(redis, _key(settings, "login:")), secret)


def _file_logins(settings: Settings) -> LoginKeeper:
    """Logins kept in the state directory, sealed with the app key or a 0600 key file."""
    state = settings.resolved_state_dir
    secret = (
        app_key_secret(settings.app_key.reveal())
        if settings.app_key
        else file_secret(state / "login-key")
    )
    return LoginKeeper(FileLoginStore(state / "logins"), secret)


def _mode(settings: Settings) -> str:
    return "embedded" if settings.embedded else "redis"


class Container(containers.DeclarativeContainer):
    """Wires the core's ports to SQLAlchemy, httpx, Redis and RQ (or their embedded twins)."""

    settings = providers.Dependency(instance_of=Settings)
    mode = providers.Callable(_mode, settings)

    clock = providers.Singleton(SystemClock, tz=settings.provided.tz)
    # Overridden with True by the commands that may create a standalone SQLite file.
    create_database = providers.Object(False)
    engine = providers.Resource(
        _engine, url=settings.provided.database_url, create_sqlite_file=create_database
    )
    redis = providers.Resource(_redis, settings)

    settings_repository = providers.Factory(
        SqlSettingsRepository, engine=engine, now=clock.provided.local_naive
    )
    configs = providers.Factory(SqlConfigRepository, engine=engine)
    panels = providers.Factory(
        SqlPanelRepository,
        engine=engine,
        credentials=providers.Singleton(_credentials, settings),
    )
    resellers = providers.Factory(SqlResellerRepository, engine=engine)
    logins: providers.Provider[LoginKeeper] = providers.Selector(
        mode,
        redis=providers.Singleton(_redis_logins, redis=redis, settings=settings),
        embedded=providers.Singleton(_file_logins, settings),
    )
    panel_clients = providers.Singleton(
        HttpxPanelClients,
        timeout=settings.provided.http_timeout_s,
        sync_concurrency=settings.provided.panel_concurrency,
        panel_budget_s=settings.provided.panel_budget_s,
        logins=logins,
    )

    lock: providers.Provider[Lock] = providers.Selector(
        mode,
        redis=providers.Singleton(
            RedisLock,
            redis=redis,
            key=providers.Callable(_key, settings, f"unique:{JOB_NAME}"),
        ),
        embedded=providers.Singleton(
            FileLock,
            path=providers.Callable(lambda s: s.resolved_state_dir / "unique-lock.json", settings),
        ),
    )
    slots: providers.Provider[DispatchSlots] = providers.Selector(
        mode,
        redis=providers.Singleton(
            RedisDispatchSlots, redis=redis, prefix=providers.Callable(_key, settings, "slot:")
        ),
        embedded=providers.Singleton(
            FileDispatchSlots,
            path=providers.Callable(lambda s: s.resolved_state_dir / "dispatched.json", settings),
        ),
    )
    run_history: providers.Provider[RunHistory] = providers.Selector(
        mode,
        redis=providers.Singleton(
            RedisRunHistory, redis=redis, key=providers.Callable(_key, settings, "last-run")
        ),
        embedded=providers.Singleton(
            FileRunHistory,
            path=providers.Callable(lambda s: s.resolved_state_dir / "last-run.json", settings),
        ),
    )
    run_stats: providers.Provider[RunStatsStore] = providers.Selector(
        mode,
        redis=providers.Singleton(
            RedisDocument, redis=redis, key=providers.Callable(_key, settings, "run-stats")
        ),
        embedded=providers.Singleton(
            FileDocument,
            path=providers.Callable(lambda s: s.resolved_state_dir / "run-stats.json", settings),
        ),
    )

    sync_one = providers.Factory(
        SyncOneConfig,
        configs=configs,
        panels=panels,
        resellers=resellers,
        clients=panel_clients,
    )
    sync_all = providers.Factory(
        SyncAllUsage,
        configs=configs,
        resellers=resellers,
        panels=panels,
        clients=panel_clients,
        clock=clock,
        abort_on=providers.Object((JobTimeoutException,)),
    )
    enforcement_store = providers.Factory(SqlEnforcementStore, engine=engine)
    remote_operations = providers.Factory(
        RemoteOperations,
        store=enforcement_store,
        panels=panels,
        clients=panel_clients,
        pace=providers.Singleton(SystemPace),
        budget_s=settings.provided.panel_budget_s,
    )
    enforce = providers.Factory(
        EnforceQuotas,
        store=enforcement_store,
        settings=settings_repository,
        panels=panels,
        remote=remote_operations,
        clock=clock,
        tz=settings.provided.tz,
    )
    sync_run = providers.Factory(
        SyncRun,
        sync=sync_all,
        lock=lock,
        history=run_history,
        enforce=enforce,
        stats=run_stats,
    )
    queue: providers.Provider[JobQueue] = providers.Selector(
        mode,
        redis=providers.Singleton(
            RqJobQueue,
            redis=redis,
            queue_name=settings.provided.queue_name,
            job_path=SYNC_JOB,
        ),
        embedded=providers.Singleton(InlineJobQueue, run=sync_run.provider),
    )
    fan_out = providers.Singleton(
        RqFanOut,
        redis=redis,
        queue_name=settings.provided.queue_name,
        panel_job_path=SYNC_PANEL_JOB,
        finish_job_path=FINISH_SYNC_JOB,
    )
    # Called as `panel_lock(panel_id=...)`: each panel job of a fan-out is unique per panel.
    panel_lock = providers.Factory(_panel_lock, redis=redis, settings=settings)
    tick = providers.Factory(
        SchedulerTick,
        settings=settings_repository,
        lock=lock,
        queue=queue,
        tz=settings.provided.tz,
        slots=slots,
    )


def build_container(env: Mapping[str, str]) -> Container:
    """A container for the settings in `env`, with logging configured."""
    from usage_entrypoints.logs import configure_logging  # noqa: PLC0415

    settings = Settings.from_env(env)
    try:
        configure_logging(
            level=settings.log_level,
            log_format=settings.log_format,
            log_file=settings.log_file,
            tz=settings.tz,
        )
    except OSError as exc:
        msg = (
            f"USAGE_SYNC_LOG_FILE={settings.log_file!r} cannot be written "
            f"({exc.strerror or type(exc).__name__}: {exc.filename}); "
            "choose a file in a directory this user may write to"
        )
        raise ConfigurationError(msg) from None
    container = Container(settings=settings)
    if not settings.embedded:
        container.redis()  # checked at start, with a short connect timeout
    return container
