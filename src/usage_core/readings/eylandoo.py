"""Eylandoo: the single-user reply's field precedence and the `list_all` shapes."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from usage_core.readings.base import (
    MAX_BYTES,
    NO_USAGE_FIELDS,
    CounterReading,
    HardFailure,
    ListingPage,
    UsageResult,
    byte_count,
    json_object,
    out_of_range,
    preview,
)

_USAGE_FIELDS = ("total_traffic_bytes", "upload_bytes", "download_bytes")


def _total_or_sum(node: Mapping[str, object], prefix: str) -> CounterReading | None:
    """`total_traffic_bytes`, or the up+down sum when that total is 0 but the sum is not."""
    total = byte_count(node.get("total_traffic_bytes"))
    if total is None:
        return None
    # A documented production bug: total_traffic_bytes stays 0 while the
    # upload and download counters beside it move.
    if total == 0:
        pair = _upload_download(node, prefix)
        if pair is not None and pair.bytes > 0:
            return pair
    # One path string for every reading: a listing holds a reading per user.
    return CounterReading(total, sys.intern(f"{prefix}total_traffic_bytes"))


def _pair(node: Mapping[str, object]) -> tuple[int, int] | None:
    """The upload and download byte counts, when both are ones."""
    upload = byte_count(node.get("upload_bytes"))
    download = byte_count(node.get("download_bytes"))
    if upload is None or download is None:
        return None
    return upload, download


def _upload_download(node: Mapping[str, object], prefix: str) -> CounterReading | None:
    pair = _pair(node)
    if pair is None:
        return None
    upload, download = pair
    return CounterReading(
        upload + download,
        sys.intern(f"{prefix}upload_bytes + download_bytes"),
        upload_bytes=upload,
        download_bytes=download,
    )


def parse_eylandoo_user(reply: object) -> UsageResult:
    """Read an Eylandoo `GET /api/v1/users/{username}` reply.

    Precedence: `success: false` fails; so does a usage field holding a
    negative number or one above 2^63 - 1, or an upload + download pair
    adding up to more (never read as 0, which would look like a counter
    reset); then `userInfo.total_traffic_bytes`;
    `userInfo.upload_bytes + download_bytes`; `data.data_used`; the flat
    `total_traffic_bytes`; the flat `upload_bytes + download_bytes`; and with
    none of them, 0 from path `none`.
    """
    root = json_object(reply)
    if root is None:
        return HardFailure("the reply is not a JSON object")
    if root.get("success") is False:
        message = root.get("message")
        detail = f": {preview(message)}" if message is not None else ""
        return HardFailure(f"the panel replied success: false{detail}")
    bad = _out_of_range_field(root)
    if bad is not None:
        if " + " in bad:
            return HardFailure(f"{bad} is above 2^63 - 1")
        return HardFailure(f"{bad} is not a byte count: {preview(_get(root, bad))}")
    user_info = json_object(root.get("userInfo"))
    if user_info is not None:
        found = _total_or_sum(user_info, "userInfo.") or _upload_download(user_info, "userInfo.")
        if found is not None:
            return found
    data = json_object(root.get("data"))
    if data is not None:
        used = byte_count(data.get("data_used"))
        if used is not None:
            return CounterReading(used, "data.data_used")
    found = _total_or_sum(root, "") or _upload_download(root, "")
    if found is not None:
        return found
    return CounterReading(0, NO_USAGE_FIELDS)


def _get(root: Mapping[str, object], path: str) -> object:
    node: object = root
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _out_of_range_field(root: Mapping[str, object]) -> str | None:
    """The first usage field (or up+down sum) holding a number no counter can be, or None.

    Fields in order: the flat ones, `userInfo.`'s, `data.data_used`; then the sums.
    """
    # Each node looked up once: a `list_all` reply has this checked for every user.
    user_info = json_object(root.get("userInfo"))
    data = json_object(root.get("data"))
    nodes = (("", root, _USAGE_FIELDS), ("userInfo.", user_info, _USAGE_FIELDS))
    for prefix, node, names in (*nodes, ("data.", data, ("data_used",))):
        if node is None:
            continue
        for name in names:
            value = node.get(name)
            if value is not None and out_of_range(value):
                return prefix + name
    for prefix, node, _ in nodes:
        pair = _pair(node) if node is not None else None
        if pair is not None and pair[0] + pair[1] > MAX_BYTES:
            return f"{prefix}upload_bytes + download_bytes"
    return None


def parse_eylandoo_list_item(item: Mapping[str, object]) -> UsageResult:
    """A `list_all` item's counter, by the single-user precedence.

    Oct-2025 items carry `data_used` at their root, where that version's
    single-user reply has it under `data`: such an item is read as that reply
    would be (`data.data_used`). An item without any usage field reads 0
    from path `none`, which the caller replaces by a single read.
    """
    result = parse_eylandoo_user(item)
    if isinstance(result, CounterReading) and not result.has_usage_field and "data_used" in item:
        return parse_eylandoo_user({"data": item})
    return result


def parse_eylandoo_list_all(reply: object) -> ListingPage | str:
    """The users of a `list_all` reply, every group flattened, or why it is not one.

    Shapes (panel-apis.md §1): `users` (v3.1.3, sub-admin keys), `data.users`
    (Oct 2025), `main_admin.users` (v3.0.0) or `main_admin_users`
    (v1.1.6/v2.0.0), each with `sub_admins[].users` beside it for a main key.
    """
    if not isinstance(reply, dict):
        return "the reply is not a JSON object"
    if reply.get("success") is False:
        return f"the panel replied success: false: {preview(str(reply.get('message')))}"
    data, main = reply.get("data"), reply.get("main_admin")
    candidates: list[object] = [
        reply.get("users"),
        data.get("users") if isinstance(data, dict) else None,
        main.get("users") if isinstance(main, dict) else None,
        reply.get("main_admin_users"),
    ]
    subs = reply.get("sub_admins")
    if isinstance(subs, list):
        candidates.extend(sub.get("users") for sub in subs if isinstance(sub, dict))
    groups = [group for group in candidates if isinstance(group, list)]
    if not groups and not isinstance(subs, list):
        return "the reply has no users list"
    return ListingPage([item for group in groups for item in group])
