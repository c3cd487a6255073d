"""What every panel reply parser returns, and the byte-count rule they share."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import attrs

_DIGITS = re.compile(r"[0-9]+")
NO_USAGE_FIELDS = "none"
# The largest counter the app's BIGINT columns hold.
MAX_BYTES = 2**63 - 1
_MESSAGE_PREVIEW = 200


@attrs.frozen(weakref_slot=False)
class CounterReading:
    """A usage counter read from a panel.

    Attributes:
        bytes: The counter in bytes, never negative.
        path: Where in the reply it came from, e.g. `userInfo.total_traffic_bytes`.
        upload_bytes: The upload part when the counter is a sum, else None.
        download_bytes: The download part when the counter is a sum, else None.
        lifetime_bytes: The panel's lifetime counter (never reset by a single
            user's reset) when the reply carries a valid one, else None.
        owner: The panel admin who owns the user, where the reply says (PasarGuard).
        blocked: Why the user cannot connect although the panel counts its
            traffic and its own status allows it (a PasarGuard admin limited
            or disabled), or None.
    """

    bytes: int
    path: str
    upload_bytes: int | None = None
    download_bytes: int | None = None
    lifetime_bytes: int | None = None
    owner: str | None = None
    blocked: str | None = None

    @property
    def has_usage_field(self) -> bool:
        """False for Eylandoo's "no traffic fields" 0, which cannot prove a counter reset."""
        return self.path != NO_USAGE_FIELDS


@attrs.frozen
class HardFailure:
    """No usable counter: the config keeps its stored usage."""

    reason: str


UsageResult = CounterReading | HardFailure


@attrs.frozen
class RemoteResult:
    """What a set-state request to a panel came to.

    Attributes:
        ok: The user is in the wanted state (already, or now).
        detail: Why not, or how it was done (e.g. "already disabled").
        verified: The state was read back from the panel after the change.
        retry: Whether trying again may help (a transport error or a 5xx).
    """

    ok: bool
    detail: str | None = None
    verified: bool = False
    retry: bool = False


@attrs.frozen
class ListingPage:
    """One page of a panel's user listing.

    Attributes:
        items: The listed users, as the panel sent them (read one by one by
            the panel's item parser).
        total: How many users the whole listing holds, when the panel says.
    """

    items: Sequence[object]
    total: int | None = None


def _number(value: object) -> int | float | None:
    """An int, a finite float or a string of ASCII digits, as a number; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def byte_count(value: object) -> int | None:
    """Read a JSON value as a byte count in 0..2^63 - 1, or None when it is not one.

    Ints, strings of ASCII digits and finite floats (truncated) are read.
    A negative number, or one too large for the app's columns, is None: a
    counter below 0 cannot be real, and taking it as 0 would look like a
    counter reset. Booleans, nulls and any other string are None too, so that
    the next rule in a precedence list is tried.
    """
    # A plain JSON integer in range, the common case of every listed user, first.
    if type(value) is int and 0 <= value <= MAX_BYTES:
        return value
    number = _number(value)
    if number is None or not 0 <= number <= MAX_BYTES:
        return None
    return int(number)


def out_of_range(value: object) -> bool:
    """True for a number that no counter can be: below 0 or above 2^63 - 1."""
    if type(value) is int:
        return not 0 <= value <= MAX_BYTES
    if isinstance(value, float) and not math.isfinite(value):
        return True
    number = _number(value)
    return number is not None and not 0 <= number <= MAX_BYTES


def json_object(value: object) -> Mapping[str, object] | None:
    """`value` when it is a JSON object, else None."""
    if type(value) is dict:  # what `json.loads` builds; the Mapping check costs more
        return value
    return value if isinstance(value, Mapping) else None


def preview(value: object) -> str:
    """A panel's message, cut short for a failure reason."""
    text = value if isinstance(value, str) else repr(value)
    return text[:_MESSAGE_PREVIEW]


def whole_number(value: object) -> int | None:
    """A JSON integer (not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None
