"""A 3x-ui `inbounds/list` reply of N clients, decoded whole and read as decoded: CPU and memory.

3x-ui answers with every client twice in one reply: in the inbound's `settings` (a JSON string
of every client) and in its `clientStats`. `json.loads` builds all of it; reading as decoded
(`usage_adapters.panels.json_stream`, used from 1 MiB up) keeps only what each client's
record is read into, and the sync steps over `settings` without building it. Run from the
project root: `python bench/listing_decode_bench.py --clients 250000`. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable

from usage_adapters.panels.json_stream import decode_elements
from usage_adapters.panels.xui import XuiListing


def reply(clients: int) -> bytes:
    """The reply body, shaped as the 3x-ui emulator and a real 3x-ui v2 send it."""
    names = [f"xui-user-{i:07d}" for i in range(clients)]
    settings = {
        "clients": [
            {"id": f"{i:08x}-0000-4000-8000-000000000000", "email": name, "enable": True,
             "flow": "", "limitIp": 0, "totalGB": 0, "expiryTime": 0, "tgId": "",
             "subId": f"sub{i}", "reset": 0}
            for i, name in enumerate(names)
        ],
        "decryption": "none",
        "fallbacks": [],
    }  # fmt: skip
    stats = [
        {"id": i, "inboundId": 1, "enable": True, "email": name, "up": i * 37, "down": i * 101,
         "allTime": i * 138, "expiryTime": 0, "total": 0, "reset": 0, "lastOnline": 0}
        for i, name in enumerate(names)
    ]  # fmt: skip
    inbound = {"id": 1, "up": 0, "down": 0, "settings": json.dumps(settings), "clientStats": stats}
    return json.dumps({"success": True, "msg": "", "obj": [inbound]}).encode()


def measure(name: str, decode: Callable[[], object]) -> None:
    """CPU seconds, then the peak and what is kept (`tracemalloc`, in a second pass)."""
    started = time.process_time()
    decode()
    cpu = time.process_time() - started
    tracemalloc.start()
    kept = decode()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    print(
        f"  {name:<22} {cpu:6.2f} CPU-s   peak {peak / 1e6:6.0f} MB   kept {current / 1e6:5.0f} MB"
    )


def main() -> None:
    """Decode the reply both ways."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=250_000)
    clients = parser.parse_args().clients
    body = reply(clients)
    print(f"a 3x-ui reply of {clients} clients: {len(body) / 1e6:.0f} MB")
    read = object()
    listing = XuiListing()
    measure("json.loads", lambda: json.loads(body))
    measure(
        "read as decoded",
        lambda: decode_elements(body, listing.user_arrays, lambda _: read),
    )
    # As the sync reads it: `settings` (every client again) checked but not built.
    measure(
        "... settings unread",
        lambda: decode_elements(body, listing.user_arrays, lambda _: read, listing.unread_values),
    )


if __name__ == "__main__":
    main()
