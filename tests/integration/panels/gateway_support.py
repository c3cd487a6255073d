"""Helpers shared by the panel gateway tests."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from usage_core.ports import PanelSession
from usage_core.readings import CounterReading, HardFailure, UsageResult
from usage_sandbox.emulator import PanelEmulator

FAST_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
SLOW_PANEL_TIMEOUT = httpx.Timeout(0.3, connect=0.5)

StartEmulator = Callable[..., PanelEmulator]
OpenSession = Callable[..., PanelSession]


def reading(result: UsageResult) -> CounterReading:
    """`result` as a reading, failing the test with the reason otherwise."""
    assert isinstance(result, CounterReading), result
    return result


def failure(result: UsageResult) -> HardFailure:
    """`result` as a hard failure, failing the test otherwise."""
    assert isinstance(result, HardFailure), result
    return result
