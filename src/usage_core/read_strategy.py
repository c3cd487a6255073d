"""How to read a panel's users: the cheapest of a full listing, exact batches or single reads.

A panel charges for every user object it serializes (Marzban builds each one's
share links and subscription URL: ~11 ms a user) and a little for every
request. Reading `needed` users of a panel that holds `total` costs:

- a full listing: `total` users, in `ceil(total / page_size)` requests;
- exact batches (a repeated `username=` filter): at most `min(needed, total)`
  users, in one request per batch of names;
- single reads: at most `min(needed, total)` users, one request each (a name
  the panel does not know costs its request and no user).

`choose` picks the least work, in users serialized plus `request_cost` users'
worth for each request. Pure: numbers in, a plan out.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence

import attrs


class ReadStrategy(enum.Enum):
    """How a panel's users are read in one run."""

    LISTING = "listing"
    BATCHES = "batches"
    SINGLES = "singles"


# The values `extra.usage_sync_read_strategy` accepts; "auto" leaves the choice to `choose`.
STRATEGY_NAMES = ("auto", *(strategy.value for strategy in ReadStrategy))


def parse_strategy(raw: object) -> ReadStrategy | str | None:
    """A forced strategy, None for "auto" (or no value), or why `raw` is not one."""
    if raw is None:
        return None
    if isinstance(raw, str):
        name = raw.strip().lower()
        if name in ("", "auto"):
            return None
        for strategy in ReadStrategy:
            if strategy.value == name:
                return strategy
    return f"expected one of {', '.join(STRATEGY_NAMES)}"


@attrs.frozen
class ReadCosts:
    """What reading users costs one panel type.

    Attributes:
        request_cost: The panel's work for one request, in users serialized.
        page_size: Users in one listing page; None when the listing is one reply.
        batch_size: Names one exact-filter request may carry; 0 when the
            panel has no exact filter.
        reports_total: True when a one-item listing page says how many users
            the panel holds (the `total` probe).
    """

    request_cost: float = 2.0
    page_size: int | None = None
    batch_size: int = 0
    reports_total: bool = False

    @property
    def batches(self) -> bool:
        """True when the panel answers an exact username filter."""
        return self.batch_size > 0


@attrs.frozen
class ReadPlan:
    """One way to read the users: its requests and the users the panel serializes."""

    strategy: ReadStrategy
    requests: int
    users: int

    def work(self, costs: ReadCosts) -> float:
        """The panel's work, in users serialized."""
        return self.users + self.requests * costs.request_cost


def plan_for(
    strategy: ReadStrategy,
    *,
    needed: int,
    total: int | None,
    costs: ReadCosts,
    batch_requests: int | None = None,
) -> ReadPlan:
    """What `strategy` asks of the panel for `needed` users of `total` (None: unknown).

    An unknown total counts as `needed` users. `batch_requests` is how many
    exact-filter requests the names make (by default `needed / batch_size`).
    """
    held = needed if total is None else total
    found = min(needed, held)
    if strategy is ReadStrategy.LISTING:
        pages = 1 if costs.page_size is None else max(1, math.ceil(held / costs.page_size))
        return ReadPlan(strategy, pages, held)
    if strategy is ReadStrategy.BATCHES:
        if batch_requests is None:
            batch_requests = math.ceil(needed / max(1, costs.batch_size))
        return ReadPlan(strategy, batch_requests, found)
    return ReadPlan(strategy, needed, found)


def needs_total(batch_requests: int, costs: ReadCosts) -> bool:
    """True when the choice depends on the panel's size, so its `total` is worth a probe.

    One batch never costs more than the listing (it serializes at most the
    users the listing would, in one request), and a panel without a `total`
    keeps its listing. A panel with a `total` but no exact filter (Remnawave)
    chooses between its listing and single reads by it.
    """
    if not costs.reports_total:
        return False
    return batch_requests > 1 if costs.batches else True


def choose(
    *,
    needed: int,
    total: int | None,
    costs: ReadCosts,
    batch_requests: int | None = None,
    forced: ReadStrategy | None = None,
) -> ReadPlan:
    """The plan that asks the panel for the least work, or the forced one where it can be had.

    Without an exact filter the panel is listed (batches forced there are
    read as a listing), unless it says how many users it holds and single
    reads are less work. With one, and `total` unknown, one batch is chosen
    when the names fit in it, the listing otherwise (as if `total` were
    unknown because the probe failed). Ties go to batches, then the listing.
    """

    def plan(strategy: ReadStrategy) -> ReadPlan:
        return plan_for(
            strategy, needed=needed, total=total, costs=costs, batch_requests=batch_requests
        )

    if forced is ReadStrategy.BATCHES and not costs.batches:
        forced = ReadStrategy.LISTING
    if forced is not None:
        return plan(forced)
    if not costs.batches:
        if total is None or not costs.reports_total:
            return plan(ReadStrategy.LISTING)
        listed, single = plan(ReadStrategy.LISTING), plan(ReadStrategy.SINGLES)
        return single if single.work(costs) < listed.work(costs) else listed
    batches = plan(ReadStrategy.BATCHES)
    if total is None:
        return batches if batches.requests <= 1 else plan(ReadStrategy.LISTING)
    candidates = (batches, plan(ReadStrategy.LISTING), plan(ReadStrategy.SINGLES))
    return min(candidates, key=lambda candidate: candidate.work(costs))


def batches_of(
    names: Sequence[str],
    *,
    size: int,
    max_chars: int,
    chars: Callable[[str], int] = len,
    least: int = 1,
) -> list[tuple[str, ...]]:
    """`names` cut into batches of at most `size` names and `max_chars` characters.

    `chars(name)` is what one name adds to the request (its encoded query
    parameter). A name longer than `max_chars` on its own still gets a batch
    of its own: the panel then answers what it answers. A batch with fewer
    than `least` names repeats its last name (Marzneshin reads a single
    `username=` value as a substring, two or more as an exact set).
    """
    batches: list[tuple[str, ...]] = []
    current: list[str] = []
    used = 0
    for name in names:
        cost = chars(name)
        if current and (len(current) >= size or used + cost > max_chars):
            batches.append(tuple(current))
            current, used = [], 0
        current.append(name)
        used += cost
    if current:
        batches.append(tuple(current))
    return [batch + (batch[-1],) * (least - len(batch)) for batch in batches]
