"""The fault suite: real processes killed, Redis restarted, connections cut, hostile panels.

Every test here is marked `faults`; `pytest -m faults` runs only them. None
skips under CI=true: a service it needs that cannot be reached fails it.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this directory as a fault test."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.faults)
