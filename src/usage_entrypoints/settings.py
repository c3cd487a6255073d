"""Process settings, read once from the environment."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from usage_adapters.laravel_crypt import DecryptionError, parse_app_key
from usage_adapters.panels import (
    DEFAULT_HTTP_TIMEOUT_S,
    DEFAULT_PANEL_BUDGET_S,
    DEFAULT_PANEL_CONCURRENCY,
)
from usage_adapters.panels.options import MAX_PANEL_CONCURRENCY
from usage_core.errors import AppKeyError, ConfigurationError
from usage_core.health import DEFAULT_MAX_PANEL_FAILURES
from usage_core.model import Secret

DEFAULT_DATABASE_URL = "sqlite:///usage-sync.sqlite"
DEFAULT_METRICS_ADDR = "0.0.0.0"  # noqa: S104 - Prometheus scrapes from another host
# Every variable the process reads, with its one-line meaning, for `--help`.
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("USAGE_SYNC_DATABASE_URL", f"the app's database (default {DEFAULT_DATABASE_URL})"),
    ("USAGE_SYNC_APP_KEY", "the app's APP_KEY, to decrypt panel credentials"),
    ("USAGE_SYNC_TIMEZONE", "the app's time zone, for the schedule (default UTC)"),
    ("USAGE_SYNC_REDIS_URL", "Redis for the worker and scheduler (unset: run inline)"),
    ("USAGE_SYNC_QUEUE", "the RQ queue name (default usage-sync)"),
    ("USAGE_SYNC_FANOUT", "panel: one job per panel with Redis (default off)"),
    ("USAGE_SYNC_STATE_DIR", "lock file and last run without Redis"),
    ("USAGE_SYNC_LOG_FILE", "write the log there instead of stderr"),
    ("USAGE_SYNC_LOG_FORMAT", "text or json"),
    ("USAGE_SYNC_LOG_LEVEL", "DEBUG, INFO, NOTICE, WARNING or ERROR (DEBUG adds tracebacks)"),
    ("USAGE_SYNC_HTTP_TIMEOUT", f"seconds per panel request (default {DEFAULT_HTTP_TIMEOUT_S:g})"),
    ("USAGE_SYNC_PANEL_BUDGET", f"seconds one panel may take (default {DEFAULT_PANEL_BUDGET_S:g})"),
    ("USAGE_SYNC_PANEL_CONCURRENCY", f"requests per panel (default {DEFAULT_PANEL_CONCURRENCY})"),
    ("USAGE_SYNC_METRICS_PORT", "serve Prometheus metrics there (run, worker, scheduler)"),
    ("USAGE_SYNC_METRICS_ADDR", f"the metrics' address (default {DEFAULT_METRICS_ADDR})"),
    (
        "USAGE_SYNC_HEALTH_PANEL_FAILURES",
        f"failed runs in a row before `health` is red (default {DEFAULT_MAX_PANEL_FAILURES})",
    ),
)
LogFormat = Literal["text", "json"]


@attrs.frozen
class Settings:
    """Everything the process is configured with.

    Attributes:
        database_url: SQLAlchemy URL of the app's database
            (`USAGE_SYNC_DATABASE_URL`, default an SQLite file in the working
            directory).
        timezone: IANA name the schedule reads minutes in (`USAGE_SYNC_TIMEZONE`).
        app_key: Laravel `APP_KEY` for decrypting panel credentials
            (`USAGE_SYNC_APP_KEY`), or None to read them as plain text.
        log_file: Where logs go (`USAGE_SYNC_LOG_FILE`); None means stderr.
        log_format: `text` or `json` (`USAGE_SYNC_LOG_FORMAT`).
        log_level: Lowest level logged (`USAGE_SYNC_LOG_LEVEL`).
        http_timeout_s: Per-request timeout towards panels
            (`USAGE_SYNC_HTTP_TIMEOUT`).
        redis_url: Redis for the RQ worker and scheduler (`USAGE_SYNC_REDIS_URL`);
            None selects the embedded mode.
        queue_name: The RQ queue (`USAGE_SYNC_QUEUE`).
        state_dir: Where the embedded mode keeps its lock file and last-run
            summary (`USAGE_SYNC_STATE_DIR`); by default a directory in the
            system's temporary directory named after the database, so that every
            process using one database shares it.
        fanout: With Redis, split each run into one job per panel plus a final
            job for the reseller totals (`USAGE_SYNC_FANOUT=panel`).
        panel_budget_s: Seconds one panel may take in a full sync
            (`USAGE_SYNC_PANEL_BUDGET`), so a slow panel never holds up the rest.
        panel_concurrency: Requests in flight per panel during a full sync
            (`USAGE_SYNC_PANEL_CONCURRENCY`), unless a panel's `extra.sync_concurrency`
            says otherwise.
        metrics_port: Port `run`, `worker` and `scheduler` serve Prometheus
            metrics on (`USAGE_SYNC_METRICS_PORT`); None serves none.
        metrics_addr: Address the metrics are served on (`USAGE_SYNC_METRICS_ADDR`,
            default every interface).
        max_panel_failures: Runs in a row a panel may fail before
            `usage-sync health` reports it (`USAGE_SYNC_HEALTH_PANEL_FAILURES`).
    """

    database_url: str = DEFAULT_DATABASE_URL
    timezone: str = "UTC"
    app_key: Secret | None = None
    log_file: str | None = None
    log_format: LogFormat = "text"
    log_level: str = "INFO"
    http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    redis_url: Secret | None = None
    queue_name: str = "usage-sync"
    state_dir: Path | None = None
    fanout: bool = False
    panel_budget_s: float = DEFAULT_PANEL_BUDGET_S
    panel_concurrency: int = DEFAULT_PANEL_CONCURRENCY
    metrics_port: int | None = None
    metrics_addr: str = DEFAULT_METRICS_ADDR
    max_panel_failures: int = DEFAULT_MAX_PANEL_FAILURES

    @property
    def embedded(self) -> bool:
        """True without Redis: jobs run inline, guarded by a lock file."""
        return self.redis_url is None

    @property
    def resolved_state_dir(self) -> Path:
        """`state_dir`, or the default derived from the database URL."""
        if self.state_dir is not None:
            return self.state_dir
        url = self.database_url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            # A relative SQLite path names a different file in each directory.
            url = "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"usage-sync-{digest}"

    @property
    def tz(self) -> ZoneInfo:
        """The configured timezone."""
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read and validate `USAGE_SYNC_*` variables; ConfigurationError when unusable."""

        def get(name: str) -> str | None:
            value = env.get(f"USAGE_SYNC_{name}", "").strip()
            return value or None

        timezone = get("TIMEZONE") or "UTC"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = (
                f"USAGE_SYNC_TIMEZONE={timezone!r} is not a known IANA time zone; "
                "use a name such as UTC or Europe/Berlin (the app's config/app.php timezone)"
            )
            raise ConfigurationError(msg) from exc
        log_format = (get("LOG_FORMAT") or "text").lower()
        if log_format not in ("text", "json"):
            msg = f"USAGE_SYNC_LOG_FORMAT must be 'text' or 'json', not {log_format!r}"
            raise ConfigurationError(msg)
        log_level = (get("LOG_LEVEL") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL"):
            msg = f"USAGE_SYNC_LOG_LEVEL={log_level!r} is not a log level"
            raise ConfigurationError(msg)
        timeout = _number(get("HTTP_TIMEOUT"), DEFAULT_HTTP_TIMEOUT_S, "HTTP_TIMEOUT", 0.1, 600)
        budget = _number(get("PANEL_BUDGET"), DEFAULT_PANEL_BUDGET_S, "PANEL_BUDGET", 1, 540)
        concurrency = _number(
            get("PANEL_CONCURRENCY"),
            DEFAULT_PANEL_CONCURRENCY,
            "PANEL_CONCURRENCY",
            1,
            MAX_PANEL_CONCURRENCY,
        )
        if concurrency != int(concurrency):
            msg = f"USAGE_SYNC_PANEL_CONCURRENCY must be a whole number, not {concurrency:g}"
            raise ConfigurationError(msg)
        fanout = (get("FANOUT") or "off").lower()
        if fanout not in ("off", "panel"):
            msg = f"USAGE_SYNC_FANOUT must be 'off' or 'panel', not {fanout!r}"
            raise ConfigurationError(msg)
        metrics_port = get("METRICS_PORT")
        port = _whole(metrics_port, 0, "METRICS_PORT", 1, 65535) if metrics_port else None
        failures = _whole(
            get("HEALTH_PANEL_FAILURES"),
            DEFAULT_MAX_PANEL_FAILURES,
            "HEALTH_PANEL_FAILURES",
            1,
            1000,
        )
        app_key = get("APP_KEY")
        if app_key:
            _check_app_key(app_key)
        redis_url = get("REDIS_URL")
        state_dir = get("STATE_DIR")
        return cls(
            database_url=get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            timezone=timezone,
            app_key=Secret(app_key) if app_key else None,
            log_file=get("LOG_FILE"),
            log_format="json" if log_format == "json" else "text",
            log_level=log_level,
            http_timeout_s=timeout,
            redis_url=Secret(redis_url) if redis_url else None,
            queue_name=get("QUEUE") or "usage-sync",
            state_dir=Path(state_dir) if state_dir else None,
            fanout=fanout == "panel",
            panel_budget_s=budget,
            panel_concurrency=int(concurrency),
            metrics_port=port,
            metrics_addr=get("METRICS_ADDR") or DEFAULT_METRICS_ADDR,
            max_panel_failures=failures,
        )


def _check_app_key(app_key: str) -> None:
    """AppKeyError, naming what is wrong (never the key), when `app_key` cannot be a key."""
    try:
        parse_app_key(app_key)
    except DecryptionError as exc:
        msg = (
            f"USAGE_SYNC_APP_KEY cannot be used: {exc}; "
            "copy APP_KEY from the app's .env file as it is (base64:...)"
        )
        raise AppKeyError(msg) from None


def _number(text: str | None, default: float, name: str, low: float, high: float) -> float:
    """`USAGE_SYNC_<name>` as a number within `low..high`, or `default` when unset."""
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        msg = f"USAGE_SYNC_{name} must be a number from {low:g} to {high:g}, not {text!r}"
        raise ConfigurationError(msg)
    return value


def _whole(text: str | None, default: int, name: str, low: int, high: int) -> int:
    """`USAGE_SYNC_<name>` as a whole number within `low..high`, or `default` when unset."""
    value = _number(text, default, name, low, high)
    if value != int(value):
        msg = f"USAGE_SYNC_{name} must be a whole number, not {text!r}"
        raise ConfigurationError(msg)
    return int(value)
