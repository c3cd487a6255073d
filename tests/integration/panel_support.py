"""Helpers for the panel gateway tests: credentials, panel rows, log lookups."""

from __future__ import annotations

import enum
import logging
import socket
from collections.abc import Iterable, Mapping
from typing import Final

from usage_core.model import Panel, Secret
from usage_core.readings import CounterReading, UsageResult
from usage_sandbox.emulator import PanelEmulator, PanelKind

ADMIN = "sync-admin"
# Characters that change under URL and JSON escaping, so every spelling is exercised.
PASSWORD = 'pw-Q7/x+y z&"SECRET"@1'
API_KEY = "ak-3f9c2b7e-SECRET-KEY"
WRONG_PASSWORD = "pw-wrong-SECRET-0"
WRONG_API_KEY = "ak-wrong-SECRET-1"

# Emulator variants the per-kind tests run against: (kind, emulator options).
VARIANTS: Mapping[str, tuple[PanelKind, Mapping[str, object]]] = {
    "eylandoo": ("eylandoo", {}),
    "marzban": ("marzban", {}),
    "marzneshin": ("marzneshin", {}),
    "pasarguard": ("pasarguard", {}),
    "xui-v2": ("xui", {"xui_version": 2}),
    "xui-v3": ("xui", {"xui_version": 3, "base_path": "/s3cr3t-base"}),
}


class Default(enum.Enum):
    """A value left to the kind of panel."""

    KEY = enum.auto()


# The API token a row of its kind holds by default: Eylandoo's and Hiddify's key; the
# others none (a 3x-ui or PasarGuard row with a token would use it instead of logging in).
KIND_DEFAULT: Final = Default.KEY


def panel_for(
    emulator: PanelEmulator,
    *,
    url: str | None = None,
    password: str | None = PASSWORD,
    api_key: str | Default | None = KIND_DEFAULT,
    panel_type: str | None = None,
    verify_tls: bool = True,
    extra: Mapping[str, object] | None = None,
) -> Panel:
    """A `panels` row pointing at `emulator`, with the test credentials.

    `extra` adds keys to the row's `extra` JSON, e.g. `sync_concurrency`.
    """
    if api_key is KIND_DEFAULT:
        api_key = API_KEY if emulator.kind in ("eylandoo", "hiddify") else None
    return Panel(
        id=1,
        name=f"emulated {emulator.kind}",
        url=url or emulator.url,
        panel_type=panel_type or emulator.kind,
        username=ADMIN,
        password=Secret(password) if password is not None else None,
        api_token=Secret(api_key) if api_key is not None else None,
        extra={"verify_tls": verify_tls, **(extra or {})},
    )


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 whose port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def records_with(records: Iterable[logging.LogRecord], message: str) -> list[logging.LogRecord]:
    """The records whose rendered message is exactly `message`."""
    return [r for r in records if r.getMessage() == message]


def context_of(record: logging.LogRecord) -> Mapping[str, object]:
    """The structured context a record carries (see `usage_core.log.ctx`)."""
    context = getattr(record, "context", {})
    assert isinstance(context, Mapping)
    return context


def rendered(record: logging.LogRecord) -> str:
    """Everything a handler could print from `record`: message, args, extras, exception."""
    text = record.getMessage() + repr(vars(record))
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text


def leaks(records: Iterable[logging.LogRecord], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(secret, rendered record) for every record that contains a secret."""
    found: list[tuple[str, str]] = []
    for record in records:
        text = rendered(record)
        found.extend((secret, text[:300]) for secret in secrets if secret and secret in text)
    return found


def counter(panel: PanelEmulator, name: str) -> int:
    """The emulator's current counter for `name`."""
    user = panel.users.get(name)
    assert user is not None, name
    return user.used


def wrong(panel: PanelEmulator, results: Mapping[str, UsageResult]) -> dict[str, object]:
    """The results that are not a reading of the emulator's current counter."""
    return {
        name: result
        for name, result in results.items()
        if not (isinstance(result, CounterReading) and result.bytes == counter(panel, name))
    }
