"""Quota arithmetic: grace thresholds and reseller totals."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from usage_core.ledger import LedgerState


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
