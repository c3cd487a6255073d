"""How panels are read: the defaults (the one place they live) and each panel's own.

The environment settings (`USAGE_SYNC_HTTP_TIMEOUT`, `USAGE_SYNC_PANEL_CONCURRENCY`,
`USAGE_SYNC_PANEL_BUDGET`) default to these values; a panel row's `extra`
may override the concurrency, the page size, the pages in flight and the read
strategy for that panel.
"""

from __future__ import annotations

import logging

import attrs

from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.read_strategy import ReadStrategy, parse_strategy

logger = logging.getLogger(__name__)

DEFAULT_HTTP_TIMEOUT_S = 15.0
DEFAULT_PANEL_CONCURRENCY = 4
MAX_PANEL_CONCURRENCY = 64
DEFAULT_PANEL_BUDGET_S = 120.0
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# Listings carry every user at once (Eylandoo, 3x-ui) or in big pages: ~0.3-1.5 kB a user.
DEFAULT_MAX_LISTING_BYTES = 512 * 1024 * 1024
# Pages one listing may take, whatever its `total` says; users past them are read singly.
MAX_LISTING_PAGES = 100_000
# The `extra` key that forces a read strategy: "auto", "listing", "batches" or "singles".
READ_STRATEGY_KEY = "usage_sync_read_strategy"


@attrs.frozen
class ReadOptions:
    """How one panel is read in a session.

    Attributes:
        concurrency: Requests in flight at most (pages and single reads).
        page_size: The panel's `extra.sync_page_size`, or None for the
            dialect's default; each paged listing clamps it to its own range.
        budget_s: Seconds a `fetch_many` may take before it stops sending.
        max_listing_bytes: Listing replies longer than this are not parsed.
        single_budget_s: Seconds one user's read or write may take in all,
            however slowly the panel answers.
        strategy: The panel's `extra.usage_sync_read_strategy`, or None to
            choose by cost (`usage_core.read_strategy.choose`).
        page_concurrency: The panel's `extra.sync_page_concurrency`: listing
            pages and batches in flight at once, or None for the panel
            type's default (Marzban: one).
    """

    concurrency: int = DEFAULT_PANEL_CONCURRENCY
    page_size: int | None = None
    budget_s: float = DEFAULT_PANEL_BUDGET_S
    max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES
    # One user's read or write, its login included: twice the per-request timeout.
    single_budget_s: float = 2 * DEFAULT_HTTP_TIMEOUT_S
    strategy: ReadStrategy | None = None
    page_concurrency: int | None = None


def read_options(
    panel: Panel,
    *,
    concurrency: int = DEFAULT_PANEL_CONCURRENCY,
    budget_s: float = DEFAULT_PANEL_BUDGET_S,
    max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES,
    single_budget_s: float = 2 * DEFAULT_HTTP_TIMEOUT_S,
) -> ReadOptions:
    """The panel's options from `extra`.

    `sync_concurrency` (1..64), `sync_page_size` and `sync_page_concurrency`
    (1..64): values that are not positive whole numbers (ints or digit
    strings) are ignored with a warning, leaving the defaults; so is a
    `usage_sync_read_strategy` other than auto, listing, batches or singles.
    """
    wanted = _positive_int(panel, "sync_concurrency")
    pages = _positive_int(panel, "sync_page_concurrency")
    return ReadOptions(
        concurrency=min(wanted or concurrency, MAX_PANEL_CONCURRENCY),
        page_size=_positive_int(panel, "sync_page_size"),
        budget_s=budget_s,
        max_listing_bytes=max_listing_bytes,
        single_budget_s=single_budget_s,
        strategy=_strategy(panel),
        page_concurrency=None if pages is None else min(pages, MAX_PANEL_CONCURRENCY),
    )


def _strategy(panel: Panel) -> ReadStrategy | None:
    parsed = parse_strategy(panel.extra.get(READ_STRATEGY_KEY))
    if isinstance(parsed, str):
        logger.warning(
            "Panel %s: ignoring extra.%s, %s",
            panel.id,
            READ_STRATEGY_KEY,
            parsed,
            extra=ctx(panel_id=panel.id, key=READ_STRATEGY_KEY),
        )
        return None
    return parsed


def _positive_int(panel: Panel, key: str) -> int | None:
    raw = panel.extra.get(key)
    if raw is None:
        return None
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    if value is None or value < 1:
        logger.warning(
            "Panel %s: ignoring extra.%s, not a positive whole number",
            panel.id,
            key,
            extra=ctx(panel_id=panel.id, key=key),
        )
        return None
    return value
