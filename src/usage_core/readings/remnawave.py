"""Remnawave: a user's `userTraffic.usedTrafficBytes` and its lifetime counter, and the
pages of the `GET /api/users/stream` keyset listing.

Since 2.3 the counters sit in a nested `userTraffic` object; before, they were
fields of the user itself, and both spellings are read. The panel stores them
as BIGINT and sends them as JSON numbers (JavaScript `Number`, exact up to
2^53); digit strings are read too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from usage_core.readings.base import (
    CounterReading,
    HardFailure,
    UsageResult,
    byte_count,
    json_object,
    preview,
    whole_number,
)

_USED = "usedTrafficBytes"
_LIFETIME = "lifetimeUsedTrafficBytes"


@attrs.frozen
class StreamPage:
    """One page of `/api/users/stream`.

    Attributes:
        items: The listed user objects, as sent.
        next_cursor: The `cursor` of the next page, or None on the last page.
    """

    items: Sequence[object]
    next_cursor: str | None


def _counters(user: Mapping[str, object]) -> tuple[Mapping[str, object], str] | None:
    """The object holding the counters and its path prefix: nested (2.3+) or flat."""
    nested = json_object(user.get("userTraffic"))
    if nested is not None and nested.get(_USED) is not None:
        return nested, "userTraffic."
    if user.get(_USED) is not None:
        return user, ""
    return None


def parse_remnawave_user_object(user: object) -> UsageResult:
    """Read a Remnawave user object: `usedTrafficBytes`, required; its lifetime counter beside.

    A lifetime counter that is missing, not a byte count, or below the current
    counter is left out (None) rather than failing the reading.
    """
    root = json_object(user)
    if root is None:
        return HardFailure("the user is not a JSON object")
    found = _counters(root)
    if found is None:
        return HardFailure("the reply has no userTraffic.usedTrafficBytes")
    holder, prefix = found
    used = byte_count(holder[_USED])
    if used is None:
        return HardFailure(f"{prefix}{_USED} is not a byte count: {preview(holder[_USED])}")
    lifetime = byte_count(holder.get(_LIFETIME))
    if lifetime is not None and lifetime < used:
        lifetime = None
    return CounterReading(used, prefix + _USED, lifetime_bytes=lifetime)


def parse_remnawave_user(reply: object) -> UsageResult:
    """Read a single-user reply, `{"response": user}`."""
    root = json_object(reply)
    if root is None:
        return HardFailure("the reply is not a JSON object")
    user = root.get("response")
    if json_object(user) is None:
        return HardFailure("the reply has no response object")
    result = parse_remnawave_user_object(user)
    if isinstance(result, CounterReading):
        return attrs.evolve(result, path="response." + result.path)
    return result


def _cursor(value: object) -> str | None:
    """A `nextCursor` (a string of digits; a bare integer accepted), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    return None


def parse_remnawave_stream(reply: object) -> StreamPage | str:
    """A `/api/users/stream` reply: `{"response": {users, nextCursor, hasMore}}`."""
    root = json_object(reply)
    body = json_object(root.get("response")) if root is not None else None
    if body is None:
        return "the reply has no response object"
    users = body.get("users")
    more = body.get("hasMore")
    if not isinstance(users, list) or not isinstance(more, bool):
        return "the reply has no users list and hasMore flag"
    if not more:
        return StreamPage(users, None)
    cursor = _cursor(body.get("nextCursor"))
    if cursor is None:
        return f"hasMore without a usable nextCursor: {preview(body.get('nextCursor'))}"
    return StreamPage(users, cursor)


def parse_remnawave_total(reply: object) -> int | str:
    """How many users a `GET /api/users` reply says the panel holds: `response.total`."""
    root = json_object(reply)
    body = json_object(root.get("response")) if root is not None else None
    total = whole_number(body.get("total")) if body is not None else None
    if total is None or total < 0:
        return "the reply has no response.total"
    return total
