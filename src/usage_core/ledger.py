"""The usage ledger: applying panel counters to a config as deltas.

The original job overwrote `usage_bytes` with the panel's counter, so a
counter reset on the panel refunded quota. The ledger instead remembers the
last counter seen and only ever adds: growth is added to `usage_bytes`; a drop
means the panel reset its counter, so the current `usage_bytes` moves into
`settled_usage_bytes` (which the quota still counts) and `usage_bytes`
restarts from the new counter.

A counter cannot show a reset that was followed by regrowth past the last
value between two syncs. Where the panel also reports a lifetime counter
(which a single user's reset leaves alone), the ledger keeps the last one
beside the last counter: the lifetime's growth is what was used since the
last sync, and growth beyond the counter's is a reset it hides.
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
        last_lifetime: The panel's lifetime counter read with `last_counter`,
            or None when that reading had none.
    """

    usage_bytes: int
    settled_bytes: int = 0
    last_counter: int | None = None
    last_lifetime: int | None = None

    @property
    def total_bytes(self) -> int:
        """Usage that counts toward the quota: current plus settled."""
        return self.usage_bytes + self.settled_bytes


def stored_state(
    usage_bytes: int,
    settled_bytes: int,
    last_counter: int | None,
    counted_bytes: int | None,
    last_lifetime: int | None = None,
) -> LedgerState:
    """The ledger a stored row stands for, trusting `usage_bytes` over an older copy of `meta`.

    Each write stores, beside the last counter, the total it brought the config
    to (`counted_bytes`). The app's reset keeps that total (usage moves into
    settled), so the two agree again after it. They disagree when an older copy
    of `meta` was saved over a newer write of ours (the app saves `meta` alone
    when the usage it loaded was already 0): the column then holds bytes that
    the stored counter does not account for, and the counter they were counted
    against is that much further on, and so is the lifetime read with it.
    A lifetime stored without a counter has nothing to be compared with and is
    dropped.
    """
    last_counter, last_lifetime = reconcile(
        usage_bytes, settled_bytes, last_counter, counted_bytes, last_lifetime
    )
    return LedgerState(usage_bytes, settled_bytes, last_counter, last_lifetime)


def reconcile(
    usage_bytes: int,
    settled_bytes: int,
    last_counter: int | None,
    counted_bytes: int | None,
    last_lifetime: int | None,
) -> tuple[int | None, int | None]:
    """The last counter and lifetime of `stored_state`, as plain values for a full sync's rows."""
    if last_counter is None:
        return None, None
    if counted_bytes is not None:
        unaccounted = usage_bytes + settled_bytes - counted_bytes
        if unaccounted > 0:
            last_counter += unaccounted
            if last_lifetime is not None:
                last_lifetime += unaccounted
    return last_counter, last_lifetime


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
    # The lifetime counter read with `counter`, when the reply had one.
    lifetime: int | None = None

    @property
    def changed(self) -> bool:
        """True when the stored fields must be written."""
        return self.before != self.after

    @property
    def settled_now(self) -> int:
        """Bytes moved into `settled_usage_bytes` by this step."""
        return self.after.settled_bytes - self.before.settled_bytes


def advance(
    state: LedgerState, counter: int, *, may_reset: bool = True, lifetime: int | None = None
) -> LedgerStep:
    """Apply a panel counter (bytes, >= 0) and its lifetime counter, if any, to a ledger state.

    With `may_reset` false (a reply that carried no usage field at all, read
    as 0), a drop is not taken as a reset: the state is kept as it is, so
    that the next real counter does not count the same bytes twice.

    When both this reading and the state have a lifetime and it did not
    drop, its growth is what was used since the last sync. A reset is then
    settled with the bytes used before it (the lifetime's growth less the
    counter since the reset), also when regrowth carried the counter past
    its last value. A lifetime that dropped (Marzban computes it from reset
    logs that "reset all" deletes; a recreated user starts again at 0), is
    missing, or grew by less than the counter says was used since a reset,
    tells nothing: the counter alone decides, as without a lifetime.
    """
    kind, usage, settled, last_counter, last_lifetime = advance_fields(
        state.usage_bytes,
        state.settled_bytes,
        state.last_counter,
        state.last_lifetime,
        counter,
        may_reset=may_reset,
        lifetime=lifetime,
    )
    after = LedgerState(usage, settled, last_counter, last_lifetime)
    if after == state:
        after = state
    ignored = kept_drop(state.usage_bytes, state.last_counter, counter, may_reset=may_reset)
    return LedgerStep(kind, counter, state, after, ignored_drop=ignored, lifetime=lifetime)


def kept_drop(usage_bytes: int, last_counter: int | None, counter: int, *, may_reset: bool) -> bool:
    """True for a drop that `advance` keeps from counting as a reset (`may_reset` false)."""
    return not may_reset and counter < (usage_bytes if last_counter is None else last_counter)


def advance_fields(
    usage_bytes: int,
    settled_bytes: int,
    last_counter: int | None,
    last_lifetime: int | None,
    counter: int,
    *,
    may_reset: bool = True,
    lifetime: int | None = None,
) -> tuple[StepKind, int, int, int | None, int | None]:
    """`advance` on plain values: the step's kind and the four fields after it.

    A full sync applies a million counters with this, building no objects for
    the rows the counter leaves unchanged; `advance` is this, wrapped.
    """
    if counter < 0 or (lifetime is not None and lifetime < 0):
        msg = f"a panel counter cannot be negative: {counter}, lifetime {lifetime}"
        raise ValueError(msg)
    if kept_drop(usage_bytes, last_counter, counter, may_reset=may_reset):
        # A drop in a reply without usage fields: kept as it is (see `advance`).
        return StepKind.UNCHANGED, usage_bytes, settled_bytes, last_counter, last_lifetime
    last = usage_bytes if last_counter is None else last_counter
    before_reset = (
        _used_before_reset(last_lifetime, last, counter, lifetime)
        if may_reset and lifetime is not None and last_lifetime is not None
        else None
    )
    if counter < last or before_reset is not None:
        settled = settled_bytes + usage_bytes + (before_reset or 0)
        return StepKind.RESET, counter, settled, counter, lifetime
    if counter == last:
        # Recording a counter that only confirms usage_bytes is not a change
        # worth a write, unless it brings a lifetime to compare the next one with.
        if last_counter is None and lifetime is None:
            return StepKind.UNCHANGED, usage_bytes, settled_bytes, last_counter, last_lifetime
        return StepKind.UNCHANGED, usage_bytes, settled_bytes, counter, lifetime
    return StepKind.GROWTH, usage_bytes + (counter - last), settled_bytes, counter, lifetime


def _used_before_reset(
    last_lifetime: int | None, last: int, counter: int, lifetime: int | None
) -> int | None:
    """Bytes used between the last sync and a reset the lifetime shows; None when it shows none.

    After a reset the counter only holds what was used since, so everything
    used since the last sync (the lifetime's growth) less the counter was
    used before the reset. With no reset, the lifetime grows as the counter
    does.
    """
    if lifetime is None or last_lifetime is None or lifetime < last_lifetime:
        return None
    used = lifetime - last_lifetime
    if counter >= last and used <= counter - last:
        return None
    if used < counter:
        # More counted since a reset than used since the last sync: the two disagree.
        return None
    return used - counter
