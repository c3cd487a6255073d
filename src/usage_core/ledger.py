"""The usage ledger: applying panel counters to a config as deltas.

The original job overwrote `usage_bytes` with the panel's counter, so a
counter reset on the panel refunded quota. The ledger instead remembers the
last counter seen and only ever adds: growth is added to `usage_bytes`; a drop
means the panel reset its counter, so the current `usage_bytes` moves into
`settled_usage_bytes` (which the quota still counts) and `usage_bytes`
restarts from the new counter.
"""

from __future__ import annotations

import enum

import attrs


@attrs.frozen
class LedgerState:
    """The usage fields of one config.

    Attributes:
        usage_bytes: `reseller_configs.usage_bytes`.
        settled_bytes: `meta.settled_usage_bytes` (0 when absent).
        last_counter: The last panel counter the ledger applied, or None when
            no counter has been seen yet (then `usage_bytes` stands in for it).
    """

    usage_bytes: int
    settled_bytes: int = 0
    last_counter: int | None = None

    @property
    def total_bytes(self) -> int:
        """Usage that counts toward the quota: current plus settled."""
        return self.usage_bytes + self.settled_bytes


def stored_state(
    usage_bytes: int, settled_bytes: int, last_counter: int | None, counted_bytes: int | None
) -> LedgerState:
    """The ledger a stored row stands for, trusting `usage_bytes` over an older copy of `meta`.

    Each write stores, beside the last counter, the total it brought the config
    to (`counted_bytes`). The app's reset keeps that total (usage moves into
    settled), so the two agree again after it. They disagree when an older copy
    of `meta` was saved over a newer write of ours (the app saves `meta` alone
    when the usage it loaded was already 0): the column then holds bytes that
    the stored counter does not account for, and the counter they were counted
    against is that much further on.
    """
    if last_counter is not None and counted_bytes is not None:
        unaccounted = usage_bytes + settled_bytes - counted_bytes
        if unaccounted > 0:
            last_counter += unaccounted
    return LedgerState(usage_bytes, settled_bytes, last_counter)


class StepKind(enum.Enum):
    """How a new counter relates to the last one."""

    UNCHANGED = "unchanged"
    GROWTH = "growth"
    RESET = "reset"


@attrs.frozen
class LedgerStep:
    """The outcome of applying one counter to a ledger state."""

    kind: StepKind
    counter: int
    before: LedgerState
    after: LedgerState
    # A drop that `may_reset=False` kept from counting as a reset.
    ignored_drop: bool = False

    @property
    def changed(self) -> bool:
        """True when the stored fields must be written."""
        return self.before != self.after

    @property
    def settled_now(self) -> int:
        """Bytes moved into `settled_usage_bytes` by this step."""
        return self.after.settled_bytes - self.before.settled_bytes


def advance(state: LedgerState, counter: int, *, may_reset: bool = True) -> LedgerStep:
    """Apply a panel counter (bytes, >= 0) to a ledger state.

    With `may_reset` false (a reply that carried no usage field at all, read
    as 0), a drop is not taken as a reset: the state is kept as it is, so
    that the next real counter does not count the same bytes twice.
    """
    if counter < 0:
        msg = f"a panel counter cannot be negative: {counter}"
        raise ValueError(msg)
    last = state.usage_bytes if state.last_counter is None else state.last_counter
    if counter == last:
        after = attrs.evolve(state, last_counter=counter)
        # Recording a counter that only confirms usage_bytes is not a change
        # worth a write.
        if state.last_counter is None:
            after = state
        return LedgerStep(StepKind.UNCHANGED, counter, state, after)
    if counter > last:
        after = LedgerState(
            usage_bytes=state.usage_bytes + (counter - last),
            settled_bytes=state.settled_bytes,
            last_counter=counter,
        )
        return LedgerStep(StepKind.GROWTH, counter, state, after)
    if not may_reset:
        return LedgerStep(StepKind.UNCHANGED, counter, state, state, ignored_drop=True)
    after = LedgerState(
        usage_bytes=counter,
        settled_bytes=state.settled_bytes + state.usage_bytes,
        last_counter=counter,
    )
    return LedgerStep(StepKind.RESET, counter, state, after)
