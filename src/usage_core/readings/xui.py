"""3x-ui: `up + down` of a `ClientTraffic` record, and the inbounds listing."""

from __future__ import annotations

import attrs

from usage_core.readings.base import (
    MAX_BYTES,
    CounterReading,
    HardFailure,
    ListingPage,
    UsageResult,
    byte_count,
    json_object,
    preview,
)


def parse_xui_client_traffic(record: object) -> UsageResult:
    """Read a 3x-ui `ClientTraffic` record: `up + down`, both required, at most 2^63 - 1."""
    client = json_object(record)
    if client is None:
        return HardFailure("the panel has no traffic record for that client")
    up = byte_count(client.get("up"))
    down = byte_count(client.get("down"))
    if up is None or down is None:
        return HardFailure("the client traffic record has no numeric up and down")
    if up + down > MAX_BYTES:
        return HardFailure(f"up + down is not a byte count: {up + down}")
    return CounterReading(up + down, "up + down", upload_bytes=up, download_bytes=down)


def parse_xui_envelope(reply: object) -> UsageResult:
    """Read a 3x-ui `{success, msg, obj}` reply whose `obj` is a `ClientTraffic`."""
    root = json_object(reply)
    if root is None:
        return HardFailure("the reply is not a JSON object")
    if root.get("success") is False:
        return HardFailure(f"the panel replied success: false: {preview(root.get('msg'))}")
    result = parse_xui_client_traffic(root.get("obj"))
    if isinstance(result, CounterReading):
        return attrs.evolve(result, path="obj.up + obj.down")
    return result


def parse_xui_inbounds(reply: object) -> ListingPage | str:
    """The `clientStats` records of every inbound in `GET /panel/api/inbounds/list`."""
    if not isinstance(reply, dict):
        return "the reply is not a JSON object"
    if reply.get("success") is not True:
        return f"the panel replied success: false: {preview(str(reply.get('msg')))}"
    inbounds = reply.get("obj")
    if inbounds is None:
        return ListingPage([])  # no inbounds at all
    if not isinstance(inbounds, list):
        return "the reply's obj is not a list of inbounds"
    records: list[object] = []
    for inbound in inbounds:
        stats = inbound.get("clientStats") if isinstance(inbound, dict) else None
        if isinstance(stats, list):
            records.extend(stats)
    return ListingPage(records)
