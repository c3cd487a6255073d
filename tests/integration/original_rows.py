"""Rows written the way the PHP app (Laravel 12, Eloquent) writes them.

Each `insert_*` takes an Engine (the row is committed) or a Connection (the caller
commits), works on SQLite, MariaDB/MySQL and PostgreSQL, and returns the new id.
What Eloquent would write is reproduced: only the attributes that are set (a None
argument leaves the column to its database default), `created_at`/`updated_at` as
'Y-m-d H:i:s' text in the app's timezone (Asia/Tehran), JSON columns as PHP's
`json_encode` text, and `panels.password`/`api_token` encrypted like
`Crypt::encryptString` (AES-256-CBC under `TEST_APP_KEY` unless told otherwise).
Extra keyword arguments name further columns (e.g. HEAD's `admin_forgiven_bytes`) and
are written as given, None included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import os
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import Connection, Engine, column, insert, select, table, text

__all__ = [
    "APP_TIMEZONE",
    "PANEL_PASSWORD",
    "SAME_AS_EXTERNAL",
    "TEST_APP_KEY",
    "fetch_row",
    "insert_audit_log",
    "insert_config",
    "insert_panel",
    "insert_reseller",
    "insert_setting",
    "insert_user",
    "laravel_encrypt_string",
    "php_datetime",
    "php_json_encode",
    "rows_of",
]

APP_TIMEZONE = ZoneInfo("Asia/Tehran")
"""VPNMarket's APP_TIMEZONE: Eloquent writes timestamps as naive local time in it."""

TEST_APP_KEY = "base64:" + base64.b64encode(bytes(range(32))).decode()
"""An APP_KEY for tests (32 bytes, as `php artisan key:generate` makes for AES-256-CBC)."""

# Shaped like the bcrypt hash `Hash::make` stores in users.password; nothing checks it.
_PASSWORD_HASH = "$2y$12$" + "x" * 53
_serial = itertools.count(1)

PANEL_PASSWORD = "secret"
"""`insert_panel`'s default password (stored encrypted)."""

SAME_AS_EXTERNAL = "<same as external_username>"
"""`insert_config`'s default `panel_user_id`: the provisioner stores the panel username."""

Target = Connection | Engine


def php_json_encode(value: Any) -> str:
    """`json_encode($value)` with PHP's default flags, for a value made of JSON types.

    Like PHP: no spaces, "/" escaped as "\\/", non-ASCII as \\uXXXX, and a dict whose
    keys are 0..n-1 in order (a PHP list), or an empty dict, encodes as a JSON array.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _php_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True).replace("/", "\\/")
    if isinstance(value, Mapping):
        keys = list(value)
        if keys == list(range(len(keys))):
            return php_json_encode(list(value.values()))
        members = (f"{php_json_encode(str(k))}:{php_json_encode(v)}" for k, v in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(php_json_encode(v) for v in value) + "]"
    raise TypeError(f"cannot json_encode a {type(value).__name__}")


def _php_float(value: float) -> str:
    """A float as PHP 7.1+ writes it (serialize_precision -1): shortest round-trip digits,
    always with a fraction, in exponent form ('1.0e+25') below 1e-4 or from 1e17 on."""
    if not math.isfinite(value):
        raise ValueError("json_encode cannot encode NAN or INF")
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len(digit_tuple) + exponent  # where the decimal point falls in `digits`
    minus = "-" if sign else ""
    if digits == "0":
        return f"{minus}0.0"
    if point < -3 or point > 17:
        power = point - 1
        return f"{minus}{digits[0]}.{digits[1:] or '0'}e{'+' if power >= 0 else '-'}{abs(power)}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{minus}{digits}{'0' * (point - len(digits))}.0"
    return f"{minus}{digits[:point]}.{digits[point:]}"


def laravel_encrypt_string(plaintext: str, app_key: str = TEST_APP_KEY) -> str:
    """`Crypt::encryptString($plaintext)` under `app_key`, with the AES-256-CBC cipher."""
    if app_key.startswith("base64:"):
        key = base64.b64decode(app_key.removeprefix("base64:"))
    else:
        key = app_key.encode()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    iv_text = base64.b64encode(iv).decode()
    value_text = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
    mac = hmac.new(key, (iv_text + value_text).encode(), hashlib.sha256).hexdigest()
    # Laravel encodes the payload with JSON_UNESCAPED_SLASHES, in this key order.
    payload = json.dumps(
        {"iv": iv_text, "value": value_text, "mac": mac, "tag": ""}, separators=(",", ":")
    )
    return base64.b64encode(payload.encode()).decode()


def php_datetime(value: datetime | date | str | None) -> str | None:
    """A timestamp as Eloquent writes it: 'Y-m-d H:i:s' in Asia/Tehran local time.

    An aware datetime is converted to Tehran time; a naive one is taken as Tehran
    time already; a date means its midnight; text is passed through.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(APP_TIMEZONE)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return f"{value.isoformat()} 00:00:00"


def _now() -> str:
    return datetime.now(APP_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")


def _json_column(value: Any) -> str | None:
    """JSON text for a column: a str is taken as JSON text the app already wrote."""
    if value is None or isinstance(value, str):
        return value
    return php_json_encode(value)


def _insert(target: Target, table_name: str, values: Mapping[str, Any]) -> int:
    if isinstance(target, Engine):
        with target.begin() as connection:
            return _insert(connection, table_name, values)
    statement = insert(table(table_name, *(column(c) for c in values))).values(dict(values))
    if target.dialect.name == "postgresql":
        return int(target.execute(statement.returning(column("id"))).scalar_one())
    row_id = target.execute(statement).lastrowid
    if row_id is None:
        raise RuntimeError(f"the driver gave no id for the new {table_name} row")
    return int(row_id)


def _set(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def fetch_row(target: Target, table_name: str, row_id: int) -> dict[str, Any]:
    """The row of `table_name` with this id, as a dict (KeyError when there is none)."""
    if isinstance(target, Engine):
        with target.connect() as connection:
            return fetch_row(connection, table_name, row_id)
    query = select(text("*")).select_from(table(table_name)).where(column("id") == row_id)
    row = target.execute(query).mappings().first()
    if row is None:
        raise KeyError(f"{table_name} has no row with id {row_id}")
    return dict(row)


def insert_user(
    target: Target,
    *,
    name: str | None = None,
    email: str | None = None,
    password_hash: str = _PASSWORD_HASH,
    **columns: Any,
) -> int:
    """A user (`users`), with a unique name and email unless given."""
    n = next(_serial)
    now = _now()
    values = _set(
        name=name or f"User {n}",
        email=email or f"user{n}-{os.getpid()}@example.test",
        password=password_hash,
        created_at=now,
        updated_at=now,
    )
    return _insert(target, "users", values | columns)


def insert_setting(target: Target, key: str, value: str | None) -> int:
    """A `settings` row, as `Setting::updateOrCreate(['key' => $key], ['value' => $value])`."""
    now = _now()
    values = {"key": key, "value": value, "created_at": now, "updated_at": now}
    return _insert(target, "settings", values)


def insert_panel(
    target: Target,
    *,
    panel_type: str = "marzban",
    url: str = "https://panel.example.test:8000",
    name: str | None = None,
    username: str | None = "admin",
    password: str | None = PANEL_PASSWORD,
    api_token: str | None = None,
    extra: Mapping[str, Any] | str | None = None,
    is_active: bool = True,
    app_key: str | None = TEST_APP_KEY,
    **columns: Any,
) -> int:
    """A panel (`panels`); `password` and `api_token` are encrypted with `app_key`.

    With `app_key=None` they are stored as given, like rows written before the
    model encrypted them. `extra` is a mapping (json_encode'd) or JSON text.
    """

    def secret(value: str | None) -> str | None:
        # The model's mutator stores null for any falsy value.
        if not value:
            return None
        return value if app_key is None else laravel_encrypt_string(value, app_key)

    now = _now()
    values = _set(
        name=name or f"{panel_type} panel {next(_serial)}",
        url=url,
        panel_type=panel_type,
        username=username,
        password=secret(password),
        api_token=secret(api_token),
        extra=_json_column(extra),
        is_active=is_active,
        created_at=now,
        updated_at=now,
    )
    return _insert(target, "panels", values | columns)


def insert_reseller(
    target: Target,
    *,
    type: str = "traffic",
    status: str = "active",
    user_id: int | None = None,
    traffic_total_bytes: int | None = 10 * 1024**3,
    traffic_used_bytes: int | None = None,
    window_starts_at: datetime | date | str | None = None,
    window_ends_at: datetime | date | str | None = None,
    panel_id: int | None = None,
    username_prefix: str | None = None,
    config_limit: int | None = None,
    settings: Mapping[str, Any] | str | None = None,
    **columns: Any,
) -> int:
    """A reseller (`resellers`) of the given type and status, with a new user unless given."""
    if user_id is None:
        user_id = insert_user(target)
    now = _now()
    values = _set(
        user_id=user_id,
        type=type,
        status=status,
        username_prefix=username_prefix,
        panel_id=panel_id,
        config_limit=config_limit,
        traffic_total_bytes=traffic_total_bytes,
        traffic_used_bytes=traffic_used_bytes,
        window_starts_at=php_datetime(window_starts_at),
        window_ends_at=php_datetime(window_ends_at),
        settings=_json_column(settings),
        created_at=now,
        updated_at=now,
    )
    return _insert(target, "resellers", values | columns)


def insert_config(
    target: Target,
    *,
    reseller_id: int,
    external_username: str | None = None,
    traffic_limit_bytes: int = 5 * 1024**3,
    expires_at: datetime | date | str = "2030-01-01 00:00:00",
    status: str = "active",
    panel_type: str = "marzban",
    panel_user_id: str | None = SAME_AS_EXTERNAL,
    panel_id: int | None = None,
    usage_bytes: int | None = None,
    meta: Mapping[str, Any] | str | None = None,
    created_by: int | None = None,
    disabled_at: datetime | date | str | None = None,
    deleted_at: datetime | date | str | None = None,
    **columns: Any,
) -> int:
    """A reseller config (`reseller_configs`); `deleted_at` makes it soft-deleted.

    `meta` is a mapping (json_encode'd) or the JSON text itself, e.g.
    '{"settled_usage_bytes":1234,"last_reset_at":"2025-11-04 10:00:00"}'.
    `created_by` defaults to the reseller's user, `external_username` to a unique
    name, and `panel_user_id` to `external_username` (pass None for NULL).
    """
    if created_by is None:
        created_by = int(fetch_row(target, "resellers", reseller_id)["user_id"])
    if external_username is None:
        external_username = f"user_{next(_serial)}"
    now = _now()
    values = _set(
        reseller_id=reseller_id,
        external_username=external_username,
        traffic_limit_bytes=traffic_limit_bytes,
        usage_bytes=usage_bytes,
        expires_at=php_datetime(expires_at),
        status=status,
        panel_type=panel_type,
        panel_user_id=external_username if panel_user_id == SAME_AS_EXTERNAL else panel_user_id,
        panel_id=panel_id,
        created_by=created_by,
        disabled_at=php_datetime(disabled_at),
        meta=_json_column(meta),
        deleted_at=php_datetime(deleted_at),
        created_at=now,
        updated_at=now,
    )
    return _insert(target, "reseller_configs", values | columns)


def insert_audit_log(
    target: Target,
    *,
    action: str,
    target_type: str,
    target_id: int,
    reason: str | None = None,
    meta: Mapping[str, Any] | None = None,
    actor_type: str | None = None,
    actor_id: int | None = None,
) -> int:
    """An `audit_logs` row as `AuditLog::log()` writes it from the console."""
    now = _now()
    values = _set(
        action=action,
        actor_type=actor_type,
        actor_id=actor_id,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        ip="127.0.0.1",
        user_agent="Symfony",
        meta=_json_column(dict(meta or {})),
        created_at=now,
        updated_at=now,
    )
    return _insert(target, "audit_logs", values)


def rows_of(target: Target, table_name: str, **where: Any) -> list[dict[str, Any]]:
    """Every row of `table_name` matching `where`, JSON columns decoded, in id order."""
    query = select(text("*")).select_from(table(table_name))
    for name, value in where.items():
        query = query.where(column(name) == value)
    query = query.order_by(column("id"))
    if isinstance(target, Engine):
        with target.connect() as conn:
            rows = conn.execute(query).mappings().all()
    else:
        rows = target.execute(query).mappings().all()
    decoded = []
    for row in rows:
        item = dict(row)
        if isinstance(item.get("meta"), str):
            item["meta"] = json.loads(item["meta"])
        decoded.append(item)
    return decoded
