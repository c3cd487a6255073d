"""Stdlib-only emulators of the panels' HTTP APIs, for tests, demos and benchmarks.

A `PanelEmulator` serves one panel type on `127.0.0.1` (a free port by
default) from a daemon thread, with an in-memory user store that tests mutate
while it runs:

    with PanelEmulator("marzban", users={"alice": 5_000}) as panel:
        ...  # point a gateway at panel.url
        panel.users.set_counter("alice", total=7_000)
        panel.set_fault("alice", Fault.http_status(503))
        assert panel.counts.logins == 1

The routes the sync reads are emulated, with the shapes documented in
`panel-apis.md`: Eylandoo (API key), Marzban and Marzneshin (OAuth2 password
form -> bearer token) and 3x-ui v2/v3 (cookie session, CSRF in v3). Nothing
here prints or logs a credential.

So are each panel's real disable/enable routes (`panel-write-apis.md`), with
their quirks, and the state they set shows in the single reads and listings:
Marzban `PUT /api/user/{u}` (a body without `next_plan` deletes the next
plan), Marzneshin `POST /api/users/{u}/disable|enable` (409 when already so),
Eylandoo `POST /api/v1/users/{u}/toggle` and `PUT` with `is_disabled`
(ignored with `eylandoo_set_state=False`), 3x-ui v2 `inbounds/updateClient`
and v3 `clients/update` (both replace the whole client entry) and v3
`clients/bulkEnable|bulkDisable`:

    panel.set_write_fault("alice", Fault.http_status(500))
    assert panel.users.is_enabled("alice")
    assert panel.counts.writes == 1

The bulk listings (Eylandoo `list_all` in each of its documented shapes,
Marzban `offset/limit`, Marzneshin `page/size`, 3x-ui `inbounds/list` with
`clientStats`) are served from per-user JSON fragments cached until the user
changes, so that listings of 250,000 users cost little more than sending them.
Listing fault hooks fail a given page, leave users out, replace a user's list
item, or run a callback before each page (to change the users between pages):

    panel.set_list_fault(3, Fault.http_status(500))
    panel.omit_from_listing({"bob"})
    panel.set_list_item("carol", {"username": "carol"})
    panel.set_list_hook(lambda page: panel.users.remove("dave"))
    panel.stats()  # requests served, most in flight, busy and build seconds

Each emulator can also charge the work a real panel does (`ServerCost`: seconds
per request and per user object serialized, one request at a time); the
measured Marzban cost is `realistic=True`. `counts.users_serialized` and
`stats().panel_s` tell the panel-side work whether or not it was slept:

    PanelEmulator("marzban", users=..., realistic=True)
    PanelEmulator("marzban", users=..., cost=ServerCost(per_user_s=0.0115, sleep=False))

Marzban and Marzneshin filter their listings by a repeated `username=` (exact;
on Marzneshin a single value is a substring match), and a request line longer
than 8 KiB gets nginx's 414.
"""

from usage_sandbox.emulator.base import (
    EYLANDOO_LIST_SHAPES,
    EYLANDOO_SHAPES,
    PANEL_KINDS,
    REALISTIC_COSTS,
    EylandooListShape,
    EylandooShape,
    Fault,
    ListHook,
    PanelKind,
    RequestCounts,
    ServerCost,
    ServerStats,
    XuiVersion,
)
from usage_sandbox.emulator.server import EmulatorFleet, PanelEmulator
from usage_sandbox.emulator.users import EmulatedUser, UserStore, split_total

__all__ = [
    "EYLANDOO_LIST_SHAPES",
    "EYLANDOO_SHAPES",
    "PANEL_KINDS",
    "REALISTIC_COSTS",
    "EmulatedUser",
    "EmulatorFleet",
    "EylandooListShape",
    "EylandooShape",
    "Fault",
    "ListHook",
    "PanelEmulator",
    "PanelKind",
    "RequestCounts",
    "ServerCost",
    "ServerStats",
    "UserStore",
    "XuiVersion",
    "split_total",
]
