"""The cycle collector's settings during a sync."""

from __future__ import annotations

import gc

import pytest

from usage_entrypoints.collector import RUN_THRESHOLD, rare_collections


def test_a_run_collects_rarely_and_freezes_what_was_there() -> None:
    """Inside a run the young generation waits for RUN_THRESHOLD allocations; set-up is frozen."""
    before = gc.get_threshold()
    with rare_collections():
        assert gc.get_threshold() == (RUN_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0


def test_settings_come_back_after_a_run_that_raised() -> None:
    """A run that fails leaves the collector as it found it, nothing frozen."""
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), rare_collections():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_made_during_a_run_are_still_collected() -> None:
    """Rare is not never: an explicit or threshold collection still frees a run's cycles."""
    with rare_collections():
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
