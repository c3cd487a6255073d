"""Hiddify (admin API v2): `current_usage_GB`, a float of GiB, and the user array listing."""

from __future__ import annotations

import math
from fractions import Fraction

from usage_core.readings.base import (
    MAX_BYTES,
    CounterReading,
    HardFailure,
    ListingPage,
    UsageResult,
    json_object,
    preview,
)

GIB = 2**30
USAGE_FIELD = "current_usage_GB"


def gib_to_bytes(value: object) -> int | None:
    """A JSON number of GiB as whole bytes, or None when it is not a usable amount.

    The panel stores bytes and reports `bytes / 2^30` as a float. The float is
    converted exactly (as the rational number it is) and floored, so no
    rounding is added to the float's own: below 2^53 bytes the panel's byte
    count comes back exactly. Negative, non-finite, boolean and non-numeric
    values are None, and so is an amount past 2^63 - 1 bytes.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value < 0:
        return None
    count = math.floor(Fraction(value) * GIB)
    return count if count <= MAX_BYTES else None


def parse_hiddify_user(reply: object) -> UsageResult:
    """Read a Hiddify `UserSchema`: `current_usage_GB` (GiB, a float), required."""
    root = json_object(reply)
    if root is None:
        return HardFailure("the reply is not a JSON object")
    if root.get(USAGE_FIELD) is None:
        return HardFailure(f"the reply has no {USAGE_FIELD}")
    used = gib_to_bytes(root[USAGE_FIELD])
    if used is None:
        return HardFailure(f"{USAGE_FIELD} is not an amount of GiB: {preview(root[USAGE_FIELD])}")
    return CounterReading(used, USAGE_FIELD)


def parse_hiddify_users(reply: object) -> ListingPage | str:
    """A Hiddify `GET .../user/` reply: a JSON array of every user, unpaged."""
    if not isinstance(reply, list):
        return "the reply is not a JSON array of users"
    return ListingPage(reply, len(reply))
