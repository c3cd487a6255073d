"""The enforcement settings, read from the app's `settings` table as the app reads them.

Keys, defaults and casts are the app's (`Setting::get`, `getBool`, `(float)`,
`(int)`). Where the app would silently turn an empty or garbage value into 0
(and so a 0 grace), the default applies instead, with a warning.
"""

from __future__ import annotations

import enum
import logging
import math
import re
from typing import TYPE_CHECKING

import attrs

from usage_core.log import ctx

if TYPE_CHECKING:  # the ports name this module's types: no import cycle at run time
    from usage_core.ports import SettingsRepository

logger = logging.getLogger(__name__)

RESELLER_GRACE_PERCENT = "reseller.auto_disable_grace_percent"
RESELLER_GRACE_BYTES = "reseller.auto_disable_grace_bytes"
CONFIG_GRACE_PERCENT = "config.auto_disable_grace_percent"
CONFIG_GRACE_BYTES = "config.auto_disable_grace_bytes"
ALLOW_CONFIG_OVERRUN = "reseller.allow_config_overrun"
ENFORCEMENT_MODE = "usage_sync.enforcement"
REMOTE_RATE = "usage_sync.remote_operations_per_second"

DEFAULT_GRACE_PERCENT = 2.0
DEFAULT_GRACE_BYTES = 52_428_800  # 50 MiB
DEFAULT_REMOTE_RATE = 3.0  # the original's 333 ms between operations

_NUMBER = re.compile(r"[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHOLE = re.compile(r"[+]?[0-9]+")


class EnforcementMode(enum.StrEnum):
    """`usage_sync.enforcement`: whether enforcement changes anything."""

    ON = "on"
    DRY_RUN = "dry-run"
    OFF = "off"


@attrs.frozen
class Grace:
    """A limit's grace: `max(int(limit * percent / 100), floor_bytes)` above it."""

    percent: float = DEFAULT_GRACE_PERCENT
    floor_bytes: int = DEFAULT_GRACE_BYTES


@attrs.frozen
class EnforcementSettings:
    """Everything the decision needs from the `settings` table."""

    reseller_grace: Grace = Grace()
    config_grace: Grace = Grace()
    allow_config_overrun: bool = True
    mode: EnforcementMode = EnforcementMode.ON
    remote_rate: float = DEFAULT_REMOTE_RATE


def _warn(key: str, raw: str, default: object, why: str) -> None:
    logger.warning(
        "Invalid %s value %r: %s; using the default %s",
        key,
        raw,
        why,
        default,
        extra=ctx(key=key, raw=raw),
    )


def parse_percent(key: str, raw: str | None, default: float) -> float:
    """A percentage (`(float)` in the app): a non-negative number, else the default."""
    if raw is None:
        return default
    text = raw.strip()
    if _NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
    _warn(key, raw, default, "not a non-negative number")
    return default


def parse_bytes(key: str, raw: str | None, default: int) -> int:
    """A byte count (`(int)` in the app): a non-negative whole number, else the default."""
    if raw is None:
        return default
    text = raw.strip()
    if _WHOLE.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return int(float(text))  # PHP's (int) truncates "52428800.9"
    _warn(key, raw, default, "not a non-negative whole number of bytes")
    return default


def parse_flag(key: str, raw: str | None, default: bool) -> bool:
    """A flag (`getBool` in the app): true/1 or false/0, else the default."""
    if raw is None:
        return default
    text = raw.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    _warn(key, raw, default, "not true/false/1/0")
    return default


def parse_mode(raw: str | None) -> EnforcementMode:
    """`on` (the default, as the original job enforces), `dry-run` or `off`."""
    if raw is None:
        return EnforcementMode.ON
    text = raw.strip().lower().replace("_", "-")
    try:
        return EnforcementMode(text)
    except ValueError:
        _warn(ENFORCEMENT_MODE, raw, EnforcementMode.ON.value, "not on, dry-run or off")
        return EnforcementMode.ON


def read_enforcement_settings(settings: SettingsRepository) -> EnforcementSettings:
    """The enforcement settings as stored now (read on every run, as the app does)."""
    rate = parse_percent(REMOTE_RATE, settings.get(REMOTE_RATE), DEFAULT_REMOTE_RATE)
    return EnforcementSettings(
        reseller_grace=Grace(
            parse_percent(
                RESELLER_GRACE_PERCENT, settings.get(RESELLER_GRACE_PERCENT), DEFAULT_GRACE_PERCENT
            ),
            parse_bytes(
                RESELLER_GRACE_BYTES, settings.get(RESELLER_GRACE_BYTES), DEFAULT_GRACE_BYTES
            ),
        ),
        config_grace=Grace(
            parse_percent(
                CONFIG_GRACE_PERCENT, settings.get(CONFIG_GRACE_PERCENT), DEFAULT_GRACE_PERCENT
            ),
            parse_bytes(CONFIG_GRACE_BYTES, settings.get(CONFIG_GRACE_BYTES), DEFAULT_GRACE_BYTES),
        ),
        allow_config_overrun=parse_flag(
            ALLOW_CONFIG_OVERRUN, settings.get(ALLOW_CONFIG_OVERRUN), True
        ),
        mode=parse_mode(settings.get(ENFORCEMENT_MODE)),
        remote_rate=rate if rate > 0 else DEFAULT_REMOTE_RATE,
    )
