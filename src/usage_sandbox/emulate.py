"""`usage-sync emulate`: one emulated panel in the foreground, for trying usage-sync by hand.

The emulator speaks the panel's documented API on a local port, with a few
users whose traffic grows every few seconds, so that a database row pointing
at it syncs real numbers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from usage_sandbox.emulator import EmulatedUser, PanelEmulator, PanelKind, split_total
from usage_sandbox.emulator.users import stable_uuid

Echo = Callable[[str], object]

MIB = 1024**2
# Types the app's `panels.panel_type` cannot hold: the row says `other` and names them in extra.
NAMED_IN_EXTRA = ("pasarguard", "hiddify", "remnawave")
# Panels given an API key (Remnawave's API token), those with no admin login, and
# Hiddify's admin proxy path.
KEYED = ("eylandoo", "hiddify", "remnawave")
KEY_ONLY = ("eylandoo", "hiddify")
HIDDIFY_PROXY_PATH = "/admin-proxy"


def seed_users(count: int, kind: PanelKind | None = None) -> list[EmulatedUser]:
    """`user0001`.. with a few hundred MiB each (on Hiddify, a uuid made from that name)."""
    users = []
    for i in range(1, count + 1):
        upload, download = split_total((i * 37 % 500 + 10) * MIB)
        name = f"user{i:04d}"
        if kind == "hiddify":
            name = str(stable_uuid(name))
        users.append(EmulatedUser(name, upload=upload, download=download))
    return users


def _sql(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def panel_row_hint(emulator: PanelEmulator, username: str, password: str, api_key: str) -> str:
    """The `panels` row that points the app's database at `emulator`, as SQL to print.

    PasarGuard, Hiddify and Remnawave rows are of type `other` and name their type in
    `extra`, which the app's `panel_type` enum cannot hold.
    """
    named = emulator.kind in NAMED_IN_EXTRA
    key_only = emulator.kind in KEY_ONLY
    values = [
        f"{emulator.kind} (emulated)",
        emulator.url,
        "other" if named else emulator.kind,
        None if key_only else username,
        None if key_only else password,
        api_key if emulator.kind in KEYED else None,
        json.dumps({"usage_sync_panel_type": emulator.kind}) if named else None,
    ]
    # Printed for the user to run, never executed; each value is quoted by `_sql`.
    columns = "name, url, panel_type, username, password, api_token, extra, is_active"
    row = ", ".join(_sql(v) for v in values)
    return f"INSERT INTO panels ({columns}) VALUES ({row}, 1);"  # noqa: S608


def serve(
    kind: PanelKind,
    *,
    port: int,
    users: int,
    grow_mib: int,
    every_s: float,
    username: str,
    password: str,
    api_key: str,
    xui_version: int,
    stop: threading.Event,
    echo: Echo,
    realistic: bool = False,
) -> None:
    """Serve one emulated panel on 127.0.0.1:`port` until `stop` is set.

    Every `every_s` seconds each user's download grows by `grow_mib` MiB.
    With `realistic`, the panel takes as long as the real one to serialize
    its users (Marzban: ~11.5 ms a user, one request at a time).
    """
    emulator = PanelEmulator(
        kind,
        users=seed_users(users, kind),
        username=username,
        password=password,
        api_key=api_key,
        xui_version=2 if xui_version == 2 else 3,
        base_path=HIDDIFY_PROXY_PATH if kind == "hiddify" else "",
        port=port,
        realistic=realistic,
    )
    with emulator:
        echo(f"Emulated {kind} panel at {emulator.url} with {users} users (user0001..)")
        if kind in KEYED:
            echo(f"  API key: {api_key}")
        if kind != "eylandoo":
            echo(f"  admin: {username} / {password}")
        echo("  panel row for the app's database:")
        echo("    " + panel_row_hint(emulator, username, password, api_key))
        echo("Press Ctrl-C to stop.")
        names = emulator.users.names()
        while not stop.wait(every_s):
            if grow_mib:
                for name in names:
                    if name in emulator.users:
                        emulator.users.add_traffic(name, download=grow_mib * MIB)
    echo("Emulator stopped.")
