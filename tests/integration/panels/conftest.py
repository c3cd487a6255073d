"""Fixtures of the panel gateway tests: emulators started and sessions opened per test."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from gateway_support import FAST_TIMEOUT, OpenSession, StartEmulator
from panel_support import ADMIN, API_KEY, PASSWORD, VARIANTS, panel_for

from usage_adapters.panels import HttpxPanelClients
from usage_core.ports import PanelClients, PanelSession
from usage_sandbox.emulator import PanelEmulator, PanelKind


@pytest.fixture
def clients() -> HttpxPanelClients:
    """Gateways with short, explicit timeouts."""
    return HttpxPanelClients(timeout=FAST_TIMEOUT)


@pytest.fixture
def start() -> Iterator[StartEmulator]:
    """Start emulators with the test credentials; all are closed after the test."""
    with ExitStack() as stack:

        def _start(kind: PanelKind, **options: Any) -> PanelEmulator:
            options.setdefault("username", ADMIN)
            options.setdefault("password", PASSWORD)
            options.setdefault("api_key", API_KEY)
            return stack.enter_context(PanelEmulator(kind, **options))

        yield _start


@pytest.fixture
def open_session(clients: HttpxPanelClients) -> Iterator[OpenSession]:
    """Open gateway sessions on emulators; all are closed after the test."""
    sessions: list[PanelSession] = []

    def _open(
        emulator: PanelEmulator, *, with_clients: PanelClients | None = None, **panel: Any
    ) -> PanelSession:
        session = (with_clients or clients).open(panel_for(emulator, **panel))
        sessions.append(session)
        return session

    yield _open
    for session in sessions:
        session.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of every logger, DEBUG and up."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, start: StartEmulator) -> Callable[..., PanelEmulator]:
    """Start an emulator of each panel variant in turn (eylandoo, marzban, ..., xui-v3)."""
    kind, options = VARIANTS[request.param]

    def _start(**extra: Any) -> PanelEmulator:
        return start(kind, **{**options, **extra})

    return _start
