"""Marzban and Marzneshin: `used_traffic` in a user object, and their listing pages."""

from __future__ import annotations

from usage_core.readings.base import (
    CounterReading,
    HardFailure,
    ListingPage,
    UsageResult,
    byte_count,
    json_object,
    preview,
    whole_number,
)


def parse_marzban_user(reply: object) -> UsageResult:
    """Read a Marzban or Marzneshin user object: `used_traffic`, required.

    `lifetime_used_traffic` comes along when it is a byte count; one that is
    not is left out, never a failure of the reading.
    """
    root = json_object(reply)
    if root is None:
        return HardFailure("the reply is not a JSON object")
    if root.get("used_traffic") is None:
        return HardFailure("the reply has no used_traffic")
    used = byte_count(root["used_traffic"])
    if used is None:
        return HardFailure(f"used_traffic is not a byte count: {preview(root['used_traffic'])}")
    lifetime = byte_count(root.get("lifetime_used_traffic"))
    if lifetime == used:
        lifetime = used  # one number object for the two, as a listing holds many
    return CounterReading(used, "used_traffic", lifetime_bytes=lifetime)


parse_marzneshin_user = parse_marzban_user


def _page(reply: object, key: str) -> ListingPage | str:
    if not isinstance(reply, dict):
        return "the reply is not a JSON object"
    items, total = reply.get(key), whole_number(reply.get("total"))
    if not isinstance(items, list) or total is None:
        return f"the reply has no {key} list and total count"
    return ListingPage(items, total)


def parse_marzban_users_page(reply: object) -> ListingPage | str:
    """A Marzban (or PasarGuard) `GET /api/users` reply: `{users, total}`."""
    return _page(reply, "users")


def parse_marzneshin_users_page(reply: object) -> ListingPage | str:
    """A Marzneshin `GET /api/users` reply (fastapi-pagination): `{items, total, ...}`."""
    return _page(reply, "items")
