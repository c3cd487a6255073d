"""Quota arithmetic: grace thresholds and reseller totals."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction

from usage_core.ledger import LedgerState
from usage_core.log import ctx
from usage_core.model import ResellerUsage, SyncItem
from usage_core.readings import MAX_BYTES

logger = logging.getLogger(__name__)


def grace_limit(limit_bytes: int, percent: float, floor_bytes: int) -> int:
    """The limit plus its grace: `limit + max(int(limit * percent / 100), floor_bytes)`.

    The percentage is applied exactly (no float rounding) and truncated toward
    zero, as the original's integer cast does.
    """
    grace = int(limit_bytes * Fraction(percent) / 100)
    return limit_bytes + max(grace, floor_bytes)


def reseller_total(configs: Iterable[LedgerState], forgiven_bytes: int = 0) -> int:
    """A reseller's used traffic over its non-deleted configs.

    `Σ(usage_bytes + settled_usage_bytes) - admin_forgiven_bytes`, never below 0
    and never above what the column holds (2^63 - 1).
    """
    return _clamped(sum(state.total_bytes for state in configs), forgiven_bytes)


def _clamped(total: int, forgiven_bytes: int) -> int:
    return min(MAX_BYTES, max(0, total - forgiven_bytes))


def reseller_sums(items: Iterable[SyncItem], added: Mapping[int, int]) -> dict[int, int]:
    """Usage plus settled bytes of `items`, by reseller, plus what this run's writes `added`.

    `added` is bytes by reseller id; a write that landed on a row changed since
    it was read adds the difference from the row as read.
    """
    sums = dict(added)
    for _ in summed_into(sums, items):
        pass
    return sums


def summed_into(sums: dict[int, int], items: Iterable[SyncItem]) -> Iterator[SyncItem]:
    """`items` as they pass, each one's usage plus settled bytes added to `sums` by reseller.

    A full sync sums every config as its rows stream into the plan, rather than
    holding the rows to sum them apart.
    """
    for item in items:
        # Plain numbers rather than `total_bytes`: this runs for every config.
        reseller_id = item.reseller_id
        sums[reseller_id] = sums.get(reseller_id, 0) + item.usage_bytes + item.settled_bytes
        yield item


def changed_totals(resellers: Iterable[ResellerUsage], sums: Mapping[int, int]) -> dict[int, int]:
    """Each reseller's new total from its configs' `sums`, where it differs from the stored one."""
    changed: dict[int, int] = {}
    for reseller in resellers:
        total = _clamped(sums.get(reseller.id, 0), reseller.forgiven_bytes)
        if total == MAX_BYTES:
            logger.warning(
                "Reseller %s: its configs add up to more than a BIGINT holds; "
                "traffic_used_bytes is stored as %s",
                reseller.id,
                MAX_BYTES,
                extra=ctx(reseller_id=reseller.id),
            )
        if total != reseller.used_bytes:
            changed[reseller.id] = total
    return changed
