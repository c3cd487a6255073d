"""Quota arithmetic: grace thresholds and reseller totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from fractions import Fraction

from usage_core.ledger import LedgerState
from usage_core.model import SyncWork


def grace_limit(limit_bytes: int, percent: float, floor_bytes: int) -> int:
    """The limit plus its grace: `limit + max(int(limit * percent / 100), floor_bytes)`.

    The percentage is applied exactly (no float rounding) and truncated toward
    zero, as the original's integer cast does.
    """
    grace = int(limit_bytes * Fraction(percent) / 100)
    return limit_bytes + max(grace, floor_bytes)


def reseller_total(configs: Iterable[LedgerState], forgiven_bytes: int = 0) -> int:
    """A reseller's used traffic over its non-deleted configs.

    `Σ(usage_bytes + settled_usage_bytes) - admin_forgiven_bytes`, never below 0.
    """
    total = sum(state.total_bytes for state in configs)
    return max(0, total - forgiven_bytes)


def changed_totals(work: SyncWork, stored: Mapping[int, LedgerState]) -> dict[int, int]:
    """Each synced reseller's new total where it differs from the stored one.

    The ledgers are the ones read with `work`, with those just written
    (`stored`, by config id) in their place.
    """
    ledgers: dict[int, list[LedgerState]] = defaultdict(list)
    for item in work.items:
        ledgers[item.config.reseller_id].append(stored.get(item.config.id, item.snapshot.state))
    changed: dict[int, int] = {}
    for reseller in work.resellers:
        total = reseller_total(ledgers.get(reseller.id, []), reseller.forgiven_bytes)
        if total != reseller.used_bytes:
            changed[reseller.id] = total
    return changed
