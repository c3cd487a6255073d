"""Field-precedence parsing of panel replies into usage counters.

One pure function per panel type. Each takes a decoded JSON value and returns
either a `CounterReading` (bytes >= 0 and the path it came from) or a
`HardFailure` with a reason. None of them raises, whatever the JSON value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import attrs

_DIGITS = re.compile(r"[0-9]+")
NO_USAGE_FIELDS = "none"
_MESSAGE_PREVIEW = 200


@attrs.frozen
class CounterReading:
    """A usage counter read from a panel.

    Attributes:
        bytes: The counter in bytes, never negative.
        path: Where in the reply it came from, e.g. `userInfo.total_traffic_bytes`.
        upload_bytes: The upload part when the counter is a sum, else None.
        download_bytes: The download part when the counter is a sum, else None.
    """

    bytes: int
    path: str
    upload_bytes: int | None = None
    download_bytes: int | None = None

    @property
    def has_usage_field(self) -> bool:
        """False for Eylandoo's "no traffic fields" 0, which cannot prove a counter reset."""
        return self.path != NO_USAGE_FIELDS


@attrs.frozen
class HardFailure:
    """No usable counter: the config keeps its stored usage."""

    reason: str


UsageResult = CounterReading | HardFailure


def byte_count(value: object) -> int | None:
    """Read a JSON value as a byte count, or None when it is not one.

    Ints, strings of ASCII digits and finite floats (truncated) are accepted;
    negatives clamp to 0. Booleans, nulls and any other string are rejected so
    that the next rule in a precedence list is tried.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return max(0, int(value))
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _object(value: object) -> Mapping[str, object] | None:
    return value if isinstance(value, Mapping) else None


def _preview(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:_MESSAGE_PREVIEW]


def _total_or_sum(node: Mapping[str, object], prefix: str) -> CounterReading | None:
    """`total_traffic_bytes`, or the up+down sum when that total is 0 but the sum is not."""
    pair = _upload_download(node, prefix)
    total = byte_count(node.get("total_traffic_bytes"))
    if total is None:
        return None
    # A documented production bug: total_traffic_bytes stays 0 while the
    # upload and download counters beside it move.
    if total == 0 and pair is not None and pair.bytes > 0:
        return pair
    return CounterReading(total, f"{prefix}total_traffic_bytes")


def _upload_download(node: Mapping[str, object], prefix: str) -> CounterReading | None:
    upload = byte_count(node.get("upload_bytes"))
    download = byte_count(node.get("download_bytes"))
    if upload is None or download is None:
        return None
    return CounterReading(
        upload + download,
        f"{prefix}upload_bytes + download_bytes",
        upload_bytes=upload,
        download_bytes=download,
    )


def parse_eylandoo_user(reply: object) -> UsageResult:
    """Read an Eylandoo `GET /api/v1/users/{username}` reply.

    Precedence: `success: false` fails; then `userInfo.total_traffic_bytes`;
    `userInfo.upload_bytes + download_bytes`; `data.data_used`; the flat
    `total_traffic_bytes`; the flat `upload_bytes + download_bytes`; and with
    none of them, 0 from path `none`.
    """
    root = _object(reply)
    if root is None:
        return HardFailure("the reply is not a JSON object")
    if root.get("success") is False:
        message = root.get("message")
        detail = f": {_preview(message)}" if message is not None else ""
        return HardFailure(f"the panel replied success: false{detail}")
    user_info = _object(root.get("userInfo"))
    if user_info is not None:
        found = _total_or_sum(user_info, "userInfo.") or _upload_download(user_info, "userInfo.")
        if found is not None:
            return found
    data = _object(root.get("data"))
    if data is not None:
        used = byte_count(data.get("data_used"))
        if used is not None:
            return CounterReading(used, "data.data_used")
    found = _total_or_sum(root, "") or _upload_download(root, "")
    if found is not None:
        return found
    return CounterReading(0, NO_USAGE_FIELDS)


def parse_marzban_user(reply: object) -> UsageResult:
    """Read a Marzban or Marzneshin user object: `used_traffic`, required."""
    root = _object(reply)
    if root is None:
        return HardFailure("the reply is not a JSON object")
    if root.get("used_traffic") is None:
        return HardFailure("the reply has no used_traffic")
    used = byte_count(root["used_traffic"])
    if used is None:
        return HardFailure(f"used_traffic is not a byte count: {_preview(root['used_traffic'])}")
    return CounterReading(used, "used_traffic")


parse_marzneshin_user = parse_marzban_user


def parse_xui_client_traffic(record: object) -> UsageResult:
    """Read a 3x-ui `ClientTraffic` record: `up + down`, both required."""
    client = _object(record)
    if client is None:
        return HardFailure("the panel has no traffic record for that client")
    up = byte_count(client.get("up"))
    down = byte_count(client.get("down"))
    if up is None or down is None:
        return HardFailure("the client traffic record has no numeric up and down")
    return CounterReading(up + down, "up + down", upload_bytes=up, download_bytes=down)


def parse_xui_envelope(reply: object) -> UsageResult:
    """Read a 3x-ui `{success, msg, obj}` reply whose `obj` is a `ClientTraffic`."""
    root = _object(reply)
    if root is None:
        return HardFailure("the reply is not a JSON object")
    if root.get("success") is False:
        return HardFailure(f"the panel replied success: false: {_preview(root.get('msg'))}")
    result = parse_xui_client_traffic(root.get("obj"))
    if isinstance(result, CounterReading):
        return attrs.evolve(result, path="obj.up + obj.down")
    return result
