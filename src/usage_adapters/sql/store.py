"""Repositories over the PHP app's tables (SQLite, MariaDB/MySQL, PostgreSQL)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import Engine, Row, Text, cast, inspect, literal, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from usage_adapters.sql import tables as t
from usage_adapters.sql.meta import (
    LAST_COUNTER_KEY,
    SETTLED_KEY,
    meta_bytes,
    meta_set,
    meta_text_guard,
    parse_meta,
)
from usage_core.errors import CredentialsError, StoreError
from usage_core.ledger import LedgerState
from usage_core.log import ctx
from usage_core.model import LedgerSnapshot, Panel, ResellerConfig, Secret

logger = logging.getLogger(__name__)

Now = Callable[[], datetime]
CredentialReader = Callable[[int, str, str], Secret]


def dialect_of(engine: Engine) -> str:
    """`sqlite`, `mysql` (MySQL and MariaDB) or `postgresql`."""
    name = engine.dialect.name
    return "mysql" if name == "mariadb" else name


def plain_credentials(_panel_id: int, _column: str, value: str) -> Secret:
    """Read a credential column as plain text."""
    return Secret(value)


class SqlSettingsRepository:
    """`settings(key, value)`: reads, and dialect-specific upserts."""

    def __init__(self, engine: Engine, now: Now) -> None:
        self._engine = engine
        self._now = now

    def get(self, key: str) -> str | None:
        """The raw value stored under `key`, or None when there is no row."""
        with self._engine.connect() as conn:
            value = conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).first()
        return None if value is None else value[0]

    def set(self, key: str, value: str) -> None:
        """Insert or replace the row for `key`."""
        now = self._now()
        row = {"key": key, "value": value, "created_at": now, "updated_at": now}
        dialect = dialect_of(self._engine)
        stmt: Any
        if dialect == "mysql":
            stmt = mysql.insert(t.settings).values(row)
            stmt = stmt.on_duplicate_key_update(value=stmt.inserted.value, updated_at=now)
        else:
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(t.settings).values(row)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.settings.c.key],
                set_={"value": stmt.excluded.value, "updated_at": now},
            )
        with self._engine.begin() as conn:
            conn.execute(stmt)


@attrs.frozen
class MetaVersion:
    """The row values a ledger snapshot was read from, for the guarded write."""

    usage_bytes: int
    meta_text: str | None
    meta_is_object: bool


def meta_text_column() -> Any:
    return cast(t.reseller_configs.c.meta, Text).label("meta_text")


CONFIG_COLUMNS = (
    t.reseller_configs.c.id,
    t.reseller_configs.c.reseller_id,
    t.reseller_configs.c.status,
    t.reseller_configs.c.panel_type,
    t.reseller_configs.c.panel_id,
    t.reseller_configs.c.panel_user_id,
    t.reseller_configs.c.external_username,
    t.reseller_configs.c.usage_bytes,
    t.reseller_configs.c.traffic_limit_bytes,
)


def _ledger(config_id: int, usage_bytes: int | None, meta_text: str | None) -> LedgerState:
    return _ledger_of(config_id, usage_bytes, parse_meta(config_id, meta_text))


def _ledger_of(config_id: int, usage_bytes: int | None, meta: Mapping[str, object]) -> LedgerState:
    return LedgerState(
        usage_bytes=int(usage_bytes or 0),
        settled_bytes=meta_bytes(config_id, meta, SETTLED_KEY) or 0,
        last_counter=meta_bytes(config_id, meta, LAST_COUNTER_KEY),
    )


def config_and_meta(row: Any) -> tuple[ResellerConfig, bool]:
    """The config of a row, and whether its meta is a non-empty JSON object."""
    problem = None
    meta: Mapping[str, object] = {}
    try:
        meta = parse_meta(row.id, row.meta_text)
        ledger = _ledger_of(row.id, row.usage_bytes, meta)
    except StoreError as exc:
        # One malformed row must not hide the reseller's other configs.
        problem = str(exc)
        ledger = LedgerState(int(row.usage_bytes or 0))
    config = ResellerConfig(
        id=row.id,
        reseller_id=row.reseller_id,
        status=row.status,
        panel_type=row.panel_type,
        panel_id=row.panel_id,
        panel_user_id=row.panel_user_id,
        external_username=row.external_username,
        usage_bytes=ledger.usage_bytes,
        traffic_limit_bytes=int(row.traffic_limit_bytes or 0),
        settled_bytes=ledger.settled_bytes,
        last_counter=ledger.last_counter,
        problem=problem,
    )
    return config, bool(meta)


def _config(row: Any) -> ResellerConfig:
    return config_and_meta(row)[0]


class SqlConfigRepository:
    """`reseller_configs`, with guarded writes of `usage_bytes` and meta."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = dialect_of(engine)

    def get(self, config_id: int) -> ResellerConfig | None:
        """The non-deleted config with this id, or None."""
        c = t.reseller_configs.c
        query = select(*CONFIG_COLUMNS, meta_text_column()).where(
            c.id == config_id, c.deleted_at.is_(None)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _config(row)

    def active_configs_of(self, reseller_id: int) -> list[ResellerConfig]:
        """The reseller's non-deleted configs with status `active`, in id order."""
        c = t.reseller_configs.c
        query = (
            select(*CONFIG_COLUMNS, meta_text_column())
            .where(c.reseller_id == reseller_id, c.status == "active", c.deleted_at.is_(None))
            .order_by(c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_config(row) for row in rows]

    def load_ledger(self, config_id: int) -> LedgerSnapshot | None:
        """The config's ledger and the exact row values it came from."""
        c = t.reseller_configs.c
        query = select(c.usage_bytes, meta_text_column()).where(
            c.id == config_id, c.deleted_at.is_(None)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        state = _ledger(config_id, row.usage_bytes, row.meta_text)
        is_object = bool(parse_meta(config_id, row.meta_text))
        version = MetaVersion(int(row.usage_bytes or 0), row.meta_text, is_object)
        return LedgerSnapshot(config_id, state, version)

    def save_ledger(self, snapshot: LedgerSnapshot, after: LedgerState) -> bool:
        """Write `after` only if `usage_bytes` and meta are still as read."""
        version = snapshot.version
        if not isinstance(version, MetaVersion):
            msg = "a ledger snapshot from another store"
            raise TypeError(msg)
        c = t.reseller_configs.c
        keys: dict[str, int] = {}
        if after.settled_bytes != snapshot.state.settled_bytes:
            keys[SETTLED_KEY] = after.settled_bytes
        if after.last_counter is not None:
            keys[LAST_COUNTER_KEY] = after.last_counter
        values: dict[str, Any] = {"usage_bytes": after.usage_bytes}
        if keys:
            values["meta"] = meta_set(self._dialect, c.meta, version.meta_is_object, keys)
        stmt = (
            update(t.reseller_configs)
            .where(
                c.id == snapshot.config_id,
                c.deleted_at.is_(None),
                c.usage_bytes == version.usage_bytes,
                self._meta_unchanged(version.meta_text),
            )
            .values(values)
        )
        with self._engine.begin() as conn:
            written = conn.execute(stmt).rowcount == 1
        if not written:
            logger.info(
                "Config %s changed while its usage was being written; retrying",
                snapshot.config_id,
                extra=ctx(config_id=snapshot.config_id),
            )
        return written

    def _meta_unchanged(self, meta_text: str | None) -> Any:
        return meta_text_guard(self._dialect) == literal(meta_text or "", Text)


def _extra(panel_id: int, value: object) -> Mapping[str, object]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if isinstance(value, dict):
        return value
    if value not in (None, []):
        logger.warning(
            "Panel %s: extra is not a JSON object; ignoring it",
            panel_id,
            extra=ctx(panel_id=panel_id),
        )
    return {}


_PANEL_QUERY = select(
    t.panels.c.id,
    t.panels.c.name,
    t.panels.c.url,
    t.panels.c.panel_type,
    t.panels.c.username,
    t.panels.c.password,
    t.panels.c.api_token,
    # Read as text so that a malformed document is reported, not raised.
    cast(t.panels.c.extra, Text).label("extra"),
    t.panels.c.is_active,
)


class SqlPanelRepository:
    """`panels`, with credentials read through a `CredentialReader`."""

    def __init__(self, engine: Engine, credentials: CredentialReader = plain_credentials) -> None:
        self._engine = engine
        self._credentials = credentials

    def get(self, panel_id: int) -> Panel | None:
        """The panel with this id, or None."""
        return self._one(_PANEL_QUERY.where(t.panels.c.id == panel_id))

    def first_of_type(self, panel_type: str) -> Panel | None:
        """The panel of this type with the lowest id, or None."""
        p = t.panels.c
        return self._one(_PANEL_QUERY.where(p.panel_type == panel_type).order_by(p.id))

    def all(self) -> list[Panel]:
        """Every panel in id order; one whose credentials cannot be read has `problem` set."""
        with self._engine.connect() as conn:
            rows = conn.execute(_PANEL_QUERY.order_by(t.panels.c.id)).all()
        panels = []
        for row in rows:
            try:
                panels.append(self._panel(row))
            except CredentialsError as exc:
                logger.error("%s", exc, extra=ctx(panel_id=row.id))
                panels.append(self._panel(row, problem=str(exc)))
        return panels

    def _one(self, query: Any) -> Panel | None:
        with self._engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return None if row is None else self._panel(row)

    def _secret(self, panel_id: int, column: str, value: str | None) -> Secret | None:
        if value is None or value == "":
            return None
        return self._credentials(panel_id, column, value)

    def _panel(self, row: Row[Any], problem: str | None = None) -> Panel:
        return Panel(
            id=row.id,
            name=row.name,
            url=row.url,
            panel_type=row.panel_type,
            username=row.username,
            password=None if problem else self._secret(row.id, "password", row.password),
            api_token=None if problem else self._secret(row.id, "api_token", row.api_token),
            extra=_extra(row.id, row.extra),
            is_active=bool(row.is_active),
            problem=problem,
        )


class SqlResellerRepository:
    """`resellers.traffic_used_bytes` and the totals of its configs."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._has_forgiven: bool | None = None

    def _forgiven_column_exists(self) -> bool:
        if self._has_forgiven is None:
            columns = inspect(self._engine).get_columns("resellers")
            self._has_forgiven = any(col["name"] == "admin_forgiven_bytes" for col in columns)
        return self._has_forgiven

    def active_traffic_resellers(self) -> list[int]:
        """Ids of resellers with status `active` and type `traffic`, in id order."""
        r = t.resellers.c
        query = select(r.id).where(r.status == "active", r.type == "traffic").order_by(r.id)
        with self._engine.connect() as conn:
            return [int(row[0]) for row in conn.execute(query)]

    def used_bytes(self, reseller_id: int) -> int | None:
        """The stored `traffic_used_bytes`, or None when the reseller is missing."""
        r = t.resellers.c
        with self._engine.connect() as conn:
            row = conn.execute(select(r.traffic_used_bytes).where(r.id == reseller_id)).first()
        return None if row is None else int(row[0] or 0)

    def config_ledgers(self, reseller_id: int) -> list[LedgerState]:
        """The ledgers of the reseller's non-deleted configs, any status."""
        c = t.reseller_configs.c
        query = select(c.id, c.usage_bytes, meta_text_column()).where(
            c.reseller_id == reseller_id, c.deleted_at.is_(None)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        ledgers = []
        for row in rows:
            try:
                ledgers.append(_ledger(row.id, row.usage_bytes, row.meta_text))
            except StoreError as exc:
                # The app itself reads settled bytes from unusable meta as 0.
                logger.warning(
                    "%s; counting its usage_bytes only", exc, extra=ctx(config_id=row.id)
                )
                ledgers.append(LedgerState(int(row.usage_bytes or 0)))
        return ledgers

    def forgiven_bytes(self, reseller_id: int) -> int:
        """`admin_forgiven_bytes`, or 0 where the column does not exist."""
        if not self._forgiven_column_exists():
            return 0
        r = t.resellers.c
        with self._engine.connect() as conn:
            row = conn.execute(select(r.admin_forgiven_bytes).where(r.id == reseller_id)).first()
        return 0 if row is None else int(row[0] or 0)

    def set_used_bytes(self, reseller_id: int, total: int) -> None:
        """Store the reseller's `traffic_used_bytes`."""
        if total < 0:
            msg = f"reseller {reseller_id}: a negative total {total} cannot be stored"
            raise StoreError(msg)
        r = t.resellers.c
        with self._engine.begin() as conn:
            conn.execute(
                update(t.resellers).where(r.id == reseller_id).values(traffic_used_bytes=total)
            )
