"""How often Python's cycle collector runs during a sync."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations between young-generation collections during a run (CPython's default is 700).
RUN_THRESHOLD = 100_000


@contextmanager
def rare_collections() -> Iterator[None]:
    """Run the cycle collector rarely for the duration of a sync.

    A sync builds a few objects a config, nearly all freed by reference counting
    as soon as the config is written; at the default threshold the collector
    runs every few hundred configs and walks every live object of the run each
    time it reaches the older generations, about a third of a large sync's CPU.
    What is alive before the run (modules, the container) is frozen out of
    the collector's walks. Cycles made during the run are still collected,
    only less often.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(RUN_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
