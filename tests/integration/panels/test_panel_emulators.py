"""The panel emulators speak the documented shapes and fail the documented ways."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpx
import pytest
from gateway_support import (
    OpenSession,
    StartEmulator,
    reading,
)
from panel_support import (
    ADMIN,
    API_KEY,
    PASSWORD,
    VARIANTS,
)

from usage_adapters.panels import HttpxPanelClients
from usage_sandbox.emulator import (
    EmulatorFleet,
    Fault,
    PanelEmulator,
)

pytestmark = pytest.mark.timeout(30)

GIB = 1024**3
NEXT_PLAN = {"data_limit": 10 * GIB, "expire": None, "add_remaining_traffic": False}


@contextmanager
def api_session(panel: PanelEmulator, *, xui_version: int = 2) -> Iterator[httpx.Client]:
    """A plain httpx client logged in to `panel` (bearer token, API key or 3x-ui session)."""
    credentials = {"username": ADMIN, "password": PASSWORD}
    with httpx.Client(base_url=panel.url, timeout=5.0) as client:
        if panel.kind == "eylandoo":
            client.headers["X-API-KEY"] = API_KEY
        elif panel.kind in ("marzban", "marzneshin", "pasarguard"):
            route = "/api/admins/token" if panel.kind == "marzneshin" else "/api/admin/token"
            token = client.post(route, data=credentials).json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
        else:
            if xui_version >= 3:
                client.headers["X-CSRF-Token"] = client.get("/csrf-token").json()["obj"]
            assert client.post("/login", data=credentials).json()["success"] is True
        yield client


def xui_client(api: httpx.Client, email: str) -> tuple[int, dict[str, object]]:
    """(inbound id, client entry) of a 3x-ui v2 client, read as a careful caller would."""
    inbound_id = api.get(f"/panel/api/inbounds/getClientTraffics/{email}").json()["obj"][
        "inboundId"
    ]
    inbound = api.get(f"/panel/api/inbounds/get/{inbound_id}").json()["obj"]
    clients = json.loads(inbound["settings"])["clients"]
    return inbound_id, next(c for c in clients if c["email"] == email)


def update_client(api: httpx.Client, inbound_id: int, client: dict[str, object]) -> httpx.Response:
    """v2 `updateClient` with `client` as the body's only client, form-encoded like the UI."""
    settings = json.dumps({"clients": [client]})
    return api.post(
        f"/panel/api/inbounds/updateClient/{client.get('id', 'missing')}",
        data={"id": str(inbound_id), "settings": settings},
    )


def disable(
    panel: PanelEmulator, api: httpx.Client, username: str, xui_version: int
) -> httpx.Response:
    """One disabling write of `username`, by the panel's own route."""
    if panel.kind in ("marzban", "pasarguard"):
        return api.put(f"/api/user/{username}", json={"status": "disabled"})
    if panel.kind == "marzneshin":
        return api.post(f"/api/users/{username}/disable")
    if panel.kind == "eylandoo":
        return api.post(f"/api/v1/users/{username}/toggle")
    if xui_version >= 3:
        return api.post("/panel/api/clients/bulkDisable", json={"emails": [username]})
    inbound_id, client = xui_client(api, username)
    return update_client(api, inbound_id, {**client, "enable": False})


class TestEmulator:
    """The emulators themselves speak each panel's documented API."""

    def test_eylandoo_status_is_open_and_user_routes_need_the_key(
        self, start: StartEmulator
    ) -> None:
        """`/api/v1/status` needs no key; user routes say "API key is missing" without one."""
        panel = start("eylandoo", users={"alice": 10, "bob": 20})
        with httpx.Client(base_url=panel.url) as raw:
            assert raw.get("/api/v1/status").json()["message"] == "Panel is online"
            missing = raw.get("/api/v1/users/alice")
            listing = raw.get("/api/v1/users/list_all", headers={"X-API-KEY": API_KEY}).json()
        assert (missing.status_code, missing.json()["message"]) == (401, "API key is missing")
        assert [u["total_traffic_bytes"] for u in listing["users"]] == [10, 20]
        assert panel.counts.list_pages == 1

    def test_marzban_lists_with_offset_and_limit(self, start: StartEmulator) -> None:
        """`/api/users` pages by offset/limit, and no limit (or 0) means everyone."""
        panel = start("marzban", users={"a": 1, "b": 2, "c": 3})
        with httpx.Client(base_url=panel.url) as raw:
            token = raw.post(
                "/api/admin/token", data={"username": ADMIN, "password": PASSWORD}
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            page = raw.get("/api/users?offset=1&limit=1", headers=auth).json()
            everyone = raw.get("/api/users?limit=0", headers=auth).json()
        assert ([u["username"] for u in page["users"]], page["total"]) == (["b"], 3)
        assert [u["used_traffic"] for u in everyone["users"]] == [1, 2, 3]

    def test_marzneshin_pages_by_page_and_size(self, start: StartEmulator) -> None:
        """`/api/users` pages by page/size and refuses a size above 100 with a 422."""
        panel = start("marzneshin", users={"a": 1, "b": 2, "c": 3})
        with httpx.Client(base_url=panel.url) as raw:
            login = raw.post("/api/admins/token", data={"username": ADMIN, "password": PASSWORD})
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            page = raw.get("/api/users?page=2&size=2", headers=auth).json()
            too_big = raw.get("/api/users?size=101", headers=auth).status_code
        assert login.json()["is_sudo"] is True
        assert ([u["username"] for u in page["items"]], page["total"], page["pages"]) == (
            ["c"],
            3,
            2,
        )
        assert too_big == 422

    def test_xui_inbounds_carry_client_stats(self, start: StartEmulator) -> None:
        """`inbounds/list` returns every client's traffic in its inbound's `clientStats`."""
        panel = start("xui", base_path="/base/", users={"a@x": 4, "b@x": 8})
        with httpx.Client(base_url=panel.url) as raw:
            login = raw.post("/login", json={"username": ADMIN, "password": PASSWORD})
            inbounds = raw.get("/panel/api/inbounds/list").json()["obj"]
        assert login.headers["set-cookie"].endswith(
            "Path=/base; Max-Age=21600; HttpOnly; SameSite=Lax"
        )
        stats = [c for inbound in inbounds for c in inbound["clientStats"]]
        assert [(c["email"], c["up"] + c["down"]) for c in stats] == [("a@x", 4), ("b@x", 8)]
        assert [c["inboundId"] for c in stats] == [inbound["id"] for inbound in inbounds[:2]]

    def test_v3_login_without_csrf_token_is_forbidden(self, start: StartEmulator) -> None:
        """The v3 emulator refuses a login that skips the CSRF token, as 3x-ui does."""
        panel = start("xui", xui_version=3)
        with httpx.Client(base_url=panel.url) as raw:
            response = raw.post("/login", data={"username": ADMIN, "password": PASSWORD})
        assert response.status_code == 403

    def test_unauthenticated_calls_get_404_or_401_with_xhr(self, start: StartEmulator) -> None:
        """Without a session the emulator answers 404, or 401 to an XHR request."""
        panel = start("xui", users={"alice": 1})
        route = "/panel/api/inbounds/getClientTraffics/alice"
        with httpx.Client(base_url=panel.url) as raw:
            plain = raw.get(route).status_code
            xhr = raw.get(route, headers={"X-Requested-With": "XMLHttpRequest"}).status_code
        assert (plain, xhr) == (404, 401)

    def test_close_wakes_requests_that_are_still_waiting(self) -> None:
        """Closing an emulator does not wait for its configured latency to run out."""
        panel = PanelEmulator("eylandoo", users={"a": 1}, latency_s=30.0).start()

        def request() -> None:
            with suppress(httpx.HTTPError):  # hung up on, or answered: either is fine
                httpx.get(f"{panel.url}/api/v1/status", timeout=30.0)

        waiting = threading.Thread(target=request)
        waiting.start()
        time.sleep(0.2)
        began = time.monotonic()
        panel.close()
        waiting.join(timeout=5.0)
        assert time.monotonic() - began < 2.0
        assert not waiting.is_alive()

    def test_fleet_runs_one_of_each_panel(
        self, clients: HttpxPanelClients, open_session: OpenSession
    ) -> None:
        """`EmulatorFleet.one_of_each` serves every kind at once, all readable by the gateways."""
        fleet = EmulatorFleet.one_of_each(
            users={"alice": 2_048}, username=ADMIN, password=PASSWORD, api_key=API_KEY
        )
        with fleet:
            readings = {name: open_session(e).fetch_usage("alice") for name, e in fleet.items()}
        assert {name: reading(r).bytes for name, r in readings.items()} == dict.fromkeys(
            ["eylandoo", "marzban", "marzneshin", "xui", "xui-v3"], 2_048
        )


class TestEmulatorWrites:
    """The emulators' disable/enable routes behave as the real panels' do, quirks included."""

    def test_marzban_status_put_round_trips_and_reads_follow(self, start: StartEmulator) -> None:
        """`PUT /api/user/{u}` disables (twice: a no-op 200) and re-enables; GET and list follow."""
        panel = start("marzban", users={"alice": 1, "bob": 2})
        with api_session(panel) as api:
            disabled = api.put("/api/user/alice", json={"status": "disabled"})
            again = api.put("/api/user/alice", json={"status": "disabled"})
            read = api.get("/api/user/alice").json()["status"]
            listed = {u["username"]: u["status"] for u in api.get("/api/users").json()["users"]}
            was_enabled = panel.users.is_enabled("alice")
            enabled = api.put("/api/user/alice", json={"status": "active"})
            back = api.get("/api/user/alice").json()["status"]
        assert (disabled.status_code, disabled.json()["status"]) == (200, "disabled")
        assert (again.status_code, again.json()["status"]) == (200, "disabled")
        assert (read, listed, was_enabled) == (
            "disabled",
            {"alice": "disabled", "bob": "active"},
            False,
        )
        assert (enabled.status_code, enabled.json()["status"], back) == (200, "active", "active")
        assert panel.users.is_enabled("alice")
        assert (panel.counts.writes, panel.counts.user_gets) == (3, 2)

    def test_marzban_put_without_next_plan_deletes_it(self, start: StartEmulator) -> None:
        """A PUT body without `next_plan` drops the user's next plan; one that sends it keeps it."""
        panel = start("marzban")
        panel.users.add("alice", total=1, next_plan=NEXT_PLAN)
        panel.users.add("bob", total=1, next_plan=NEXT_PLAN)
        plan = {**NEXT_PLAN, "fire_on_either": True}
        with api_session(panel) as api:
            before = api.get("/api/user/alice").json()["next_plan"]
            dropped = api.put("/api/user/alice", json={"status": "disabled"}).json()
            kept = api.put("/api/user/bob", json={"status": "disabled", "next_plan": plan}).json()
            read = api.get("/api/user/alice").json()["next_plan"]
        assert before == NEXT_PLAN
        assert (dropped["next_plan"], read) == (None, None)
        assert kept["next_plan"] == plan
        bob = panel.users.get("bob")
        assert bob is not None
        assert bob.next_plan == plan

    def test_marzban_put_refuses_unknown_status_and_user(self, start: StartEmulator) -> None:
        """A PUT may not set `limited` (422 on `status`), and an unknown user is a 404."""
        panel = start("marzban", users={"alice": 1})
        with api_session(panel) as api:
            limited = api.put("/api/user/alice", json={"status": "limited"})
            missing = api.put("/api/user/nobody", json={"status": "disabled"})
            noted = api.put("/api/user/alice", json={"data_limit": 5 * GIB, "note": "vip"}).json()
        assert (limited.status_code, list(limited.json()["detail"])) == (422, ["status"])
        assert (missing.status_code, missing.json()) == (404, {"detail": "User not found"})
        assert (noted["status"], noted["data_limit"], noted["note"]) == ("active", 5 * GIB, "vip")
        assert panel.counts.writes == 3

    def test_marzneshin_disable_enable_and_409_when_already_so(self, start: StartEmulator) -> None:
        """`/disable` and `/enable` flip `enabled`, which GET and list show; a repeat is a 409."""
        panel = start("marzneshin", users={"alice": 1, "bob": 2})
        with api_session(panel) as api:
            disabled = api.post("/api/users/alice/disable")
            twice = api.post("/api/users/alice/disable")
            read = api.get("/api/users/alice").json()
            listed = {u["username"]: u["enabled"] for u in api.get("/api/users").json()["items"]}
            enabled = api.post("/api/users/alice/enable")
            again = api.post("/api/users/alice/enable")
            missing = api.post("/api/users/nobody/disable")
        assert (disabled.status_code, disabled.json()["enabled"]) == (200, False)
        assert (twice.status_code, twice.json()) == (409, {"detail": "User is not enabled"})
        assert (read["enabled"], read["is_active"], listed) == (
            False,
            False,
            {"alice": False, "bob": True},
        )
        assert (enabled.status_code, enabled.json()["enabled"], enabled.json()["is_active"]) == (
            200,
            True,
            True,
        )
        assert (again.status_code, again.json()) == (409, {"detail": "User is already enabled"})
        assert missing.status_code == 404
        assert panel.users.is_enabled("alice")
        assert panel.counts.writes == 5

    def test_marzneshin_enable_leaves_an_over_quota_user_inactive(
        self, start: StartEmulator
    ) -> None:
        """Enabling a user over its data limit sets `enabled` but `is_active` stays false."""
        panel = start("marzneshin")
        panel.users.add("alice", total=10, data_limit=5, enabled=False)
        with api_session(panel) as api:
            enabled = api.post("/api/users/alice/enable").json()
        assert (enabled["enabled"], enabled["is_active"], enabled["data_limit_reached"]) == (
            True,
            False,
            True,
        )

    def test_marzban_reset_keeps_the_lifetime_and_reactivates_a_disabled_user(
        self, start: StartEmulator
    ) -> None:
        """v0.8.4's single reset logs the counter (the lifetime stands) and sets `active`."""
        panel = start("marzban")
        panel.users.add("alice", total=700, enabled=False, next_plan=NEXT_PLAN)
        with api_session(panel) as api:
            reset = api.post("/api/user/alice/reset")
            missing = api.post("/api/user/nobody/reset")
        body = reset.json()
        assert (reset.status_code, body["used_traffic"], body["lifetime_used_traffic"]) == (
            200,
            0,
            700,
        )
        assert (body["status"], body["next_plan"]) == ("active", None)
        assert (missing.status_code, missing.json()) == (404, {"detail": "User not found"})

    def test_reset_all_drops_marzbans_lifetime_and_keeps_marzneshins(
        self, start: StartEmulator
    ) -> None:
        """Marzban's reset-all deletes the reset logs its lifetime is summed from; Marzneshin's
        lifetime is a column the reset leaves alone."""
        for kind, reply, lifetime in (
            ("marzban", {"detail": "Users successfully reset."}, 0),
            ("marzneshin", {}, 900),
        ):
            panel = start(kind)
            panel.users.add("alice", total=500)
            panel.users.reset_counter("alice")
            panel.users.add_traffic("alice", download=400)
            path = "/api/user/alice" if kind == "marzban" else "/api/users/alice"
            with api_session(panel) as api:
                assert api.get(path).json()["lifetime_used_traffic"] == 900
                done = api.post("/api/users/reset")
                after = api.get(path).json()
            assert (done.status_code, done.json()) == (200, reply), kind
            assert (after["used_traffic"], after["lifetime_used_traffic"]) == (0, lifetime), kind

    def test_xui_v2_update_client_round_trips_with_the_full_client(
        self, start: StartEmulator
    ) -> None:
        """The full client from `inbounds/get`, `enable` flipped, disables and re-enables it."""
        panel = start("xui", users={"a@x": 1, "b@x": 2, "c@x": 3}, xui_inbounds=2)
        with api_session(panel) as api:
            inbound_id, client = xui_client(api, "c@x")
            off = update_client(api, inbound_id, {**client, "enable": False}).json()
            stats = {
                c["email"]: c["enable"]
                for inbound in api.get("/panel/api/inbounds/list").json()["obj"]
                for c in inbound["clientStats"]
            }
            traffic = api.get("/panel/api/inbounds/getClientTraffics/c@x").json()["obj"]
            was_enabled = panel.users.is_enabled("c@x")
            on = update_client(api, inbound_id, {**client, "enable": True}).json()
            _, after = xui_client(api, "c@x")
        assert inbound_id == 2
        assert (off["success"], off["msg"], on["success"]) == (
            True,
            "Inbound client has been updated.",
            True,
        )
        assert (stats, traffic["enable"], was_enabled) == (
            {"a@x": True, "b@x": True, "c@x": False},
            False,
            False,
        )
        assert panel.users.is_enabled("c@x")
        assert (after["enable"], after["limitIp"], after["totalGB"], after["id"]) == (
            True,
            2,
            50 * GIB,
            client["id"],
        )
        assert panel.counts.writes == 2

    def test_xui_v2_partial_client_wipes_the_limits(self, start: StartEmulator) -> None:
        """`updateClient` replaces the whole client: leaving out `totalGB`/`limitIp` zeroes them."""
        panel = start("xui", users={"alice@x": 1})
        with api_session(panel) as api:
            inbound_id, client = xui_client(api, "alice@x")
            partial = {"id": client["id"], "email": "alice@x", "enable": False}
            reply = update_client(api, inbound_id, partial).json()
            _, after = xui_client(api, "alice@x")
            traffic = api.get("/panel/api/inbounds/getClientTraffics/alice@x").json()["obj"]
        assert (client["totalGB"], client["limitIp"], client["flow"]) == (
            50 * GIB,
            2,
            "xtls-rprx-vision",
        )
        assert reply["success"] is True
        assert (after["totalGB"], after["limitIp"], after["flow"], after["subId"]) == (0, 0, "", "")
        assert (after["enable"], traffic["enable"], traffic["total"]) == (False, False, 0)

    def test_xui_v2_unmatched_client_id_is_refused(self, start: StartEmulator) -> None:
        """An id the named inbound does not hold, or a client without `id`, is "empty client ID"."""
        panel = start("xui", users={"a@x": 1, "b@x": 2}, xui_inbounds=2)
        with api_session(panel) as api:
            inbound_id, client = xui_client(api, "a@x")
            wrong_inbound = update_client(api, inbound_id + 1, {**client, "enable": False})
            no_id = api.post(
                f"/panel/api/inbounds/updateClient/{client['id']}",
                json={"id": inbound_id, "settings": json.dumps({"clients": [{"email": "a@x"}]})},
            )
        for reply in (wrong_inbound, no_id):
            assert reply.status_code == 200
            assert reply.json()["success"] is False
            assert "empty client ID" in reply.json()["msg"]
        assert panel.users.is_enabled("a@x")
        assert panel.counts.writes == 2

    def test_xui_v3_client_update_round_trips(self, start: StartEmulator) -> None:
        """v3 `clients/get`, then `clients/update` with `enable` flipped, disables and enables."""
        panel = start("xui", xui_version=3, users={"a@x": 1, "b@x": 2})
        with api_session(panel, xui_version=3) as api:
            got = api.get("/panel/api/clients/get/a@x").json()["obj"]
            record = got["client"]
            # Back to a `model.Client`: `uuid` is its `id`; `allowedIPs` (a string here) is dropped.
            dropped = ("id", "uuid", "createdAt", "updatedAt", "allowedIPs")
            client = {k: v for k, v in record.items() if k not in dropped}
            client["id"] = record["uuid"]
            off = api.post("/panel/api/clients/update/a@x", json={**client, "enable": False}).json()
            read = api.get("/panel/api/clients/get/a@x").json()["obj"]["client"]
            listed = [
                c["enable"]
                for inbound in api.get("/panel/api/inbounds/list").json()["obj"]
                for c in inbound["clientStats"]
                if c["email"] == "a@x"
            ]
            was_enabled = panel.users.is_enabled("a@x")
            on = api.post("/panel/api/clients/update/a@x", json={**client, "enable": True}).json()
            as_read = api.post("/panel/api/clients/update/a@x", json=record).json()
            renamed = {**record, "id": record["uuid"]}
            ips_as_read = api.post("/panel/api/clients/update/a@x", json=renamed).json()
            unknown = api.post("/panel/api/clients/update/nobody", json=client).json()
        assert (got["inboundIds"], record["enable"], record["limitIp"]) == ([1], True, 2)
        assert (off["success"], read["enable"], listed, was_enabled) == (
            True,
            False,
            [False],
            False,
        )
        assert (read["uuid"], read["totalGB"], read["limitIp"]) == (record["uuid"], 50 * GIB, 2)
        assert on["success"] is True
        assert panel.users.is_enabled("a@x")
        assert (as_read["success"], "Client.id of type string" in as_read["msg"]) == (False, True)
        assert (ips_as_read["success"], "Client.allowedIPs" in ips_as_read["msg"]) == (False, True)
        assert (unknown["success"], "record not found" in unknown["msg"]) == (False, True)
        assert (panel.counts.writes, panel.counts.user_gets) == (5, 2)

    def test_xui_v3_post_without_csrf_token_is_forbidden(self, start: StartEmulator) -> None:
        """A v3 POST without `X-CSRF-Token` is a bare 403, and `updateClient` is gone (404)."""
        panel = start("xui", xui_version=3, users={"a@x": 1})
        with api_session(panel, xui_version=3) as api:
            token = api.headers.pop("X-CSRF-Token")
            forbidden = api.post("/panel/api/clients/bulkDisable", json={"emails": ["a@x"]})
            wrong = api.post(
                "/panel/api/clients/bulkDisable",
                json={"emails": ["a@x"]},
                headers={"X-CSRF-Token": token[::-1]},
            )
            read = api.get("/panel/api/clients/get/a@x")
            gone = api.post(
                "/panel/api/inbounds/updateClient/x",
                data={"id": "1", "settings": "{}"},
                headers={"X-CSRF-Token": token},
            )
        assert (forbidden.status_code, forbidden.content) == (403, b"")
        assert wrong.status_code == 403
        assert read.json()["obj"]["client"]["enable"] is True
        assert gone.status_code == 404
        assert panel.users.is_enabled("a@x")
        assert (panel.counts.rejected, panel.counts.writes) == (2, 0)

    def test_xui_v3_bulk_disable_counts_changed_and_skipped(self, start: StartEmulator) -> None:
        """`bulkDisable` counts known emails as changed (even if so already), skips unknown ones."""
        panel = start("xui", xui_version=3, users={"a@x": 1, "b@x": 2, "c@x": 3})
        panel.users.set_enabled("b@x", False)
        with api_session(panel, xui_version=3) as api:
            emails = ["a@x", "b@x", " a@x ", "", "ghost@x"]
            disabled = api.post("/panel/api/clients/bulkDisable", json={"emails": emails}).json()
            enabled = api.post("/panel/api/clients/bulkEnable", json={"emails": ["a@x"]}).json()
            empty = api.post("/panel/api/clients/bulkEnable", json={"emails": []}).json()
        assert disabled == {
            "success": True,
            "msg": "",
            "obj": {"changed": 2, "skipped": [{"email": "ghost@x", "reason": "client not found"}]},
        }
        assert (enabled["obj"], empty["obj"]) == ({"changed": 1}, {"changed": 0})
        assert [panel.users.is_enabled(n) for n in ("a@x", "b@x", "c@x")] == [True, False, True]
        assert panel.counts.writes == 3

    def test_eylandoo_toggle_flips_and_every_shape_follows(self, start: StartEmulator) -> None:
        """`/toggle` flips the state and says so; all three user shapes and `list_all` follow."""
        panel = start("eylandoo", users={"alice": 1, "bob": 2})
        with api_session(panel) as api:
            off = api.post("/api/v1/users/alice/toggle").json()
            flat = api.get("/api/v1/users/alice").json()["is_active"]
            panel.set_shape("alice", "old")
            old = api.get("/api/v1/users/alice").json()["data"]["status"]
            panel.set_shape("alice", "user_info")
            info = api.get("/api/v1/users/alice").json()["userInfo"]["is_active"]
            listed = {
                u["username"]: u["is_active"]
                for u in api.get("/api/v1/users/list_all").json()["users"]
            }
            on = api.post("/api/v1/users/alice/toggle").json()
            missing = api.post("/api/v1/users/nobody/toggle")
        assert off == {"success": True, "message": "User disabled", "is_active": False}
        assert (flat, old, info, listed) == (
            False,
            "disabled",
            False,
            {"alice": False, "bob": True},
        )
        assert on == {"success": True, "message": "User enabled", "is_active": True}
        assert missing.status_code == 404
        assert panel.users.is_enabled("alice")
        assert panel.counts.writes == 3

    def test_eylandoo_put_is_disabled_sets_the_state(self, start: StartEmulator) -> None:
        """`PUT` with `is_disabled` sets the state either way, idempotently."""
        panel = start("eylandoo", users={"alice": 1})
        with api_session(panel) as api:
            off = api.put("/api/v1/users/alice", json={"is_disabled": True}).json()
            again = api.put("/api/v1/users/alice", json={"is_disabled": True}).json()
            read = api.get("/api/v1/users/alice").json()["is_active"]
            on = api.put("/api/v1/users/alice", json={"is_disabled": False}).json()
            empty = api.put("/api/v1/users/alice", json={})
        assert (off["success"], off["message"], off["user"]["is_active"]) == (
            True,
            "User updated successfully",
            False,
        )
        assert (again["user"]["is_active"], read, on["user"]["is_active"]) == (False, False, True)
        assert (empty.status_code, empty.json()["success"]) == (400, False)
        assert panel.users.is_enabled("alice")

    def test_eylandoo_put_ignores_is_disabled_on_an_older_panel(self, start: StartEmulator) -> None:
        """With `eylandoo_set_state=False` a PUT says "updated" but the user stays enabled."""
        panel = start("eylandoo", users={"alice": 1}, eylandoo_set_state=False)
        with api_session(panel) as api:
            reply = api.put("/api/v1/users/alice", json={"is_disabled": True}).json()
            read = api.get("/api/v1/users/alice").json()["is_active"]
        assert reply == {"success": True, "message": "User updated successfully."}
        assert read is True
        assert panel.users.is_enabled("alice")
        assert panel.counts.writes == 1

    @pytest.mark.parametrize("name", sorted(VARIANTS))
    def test_write_fault_fails_only_that_users_writes(
        self, start: StartEmulator, name: str
    ) -> None:
        """A 500 write fault fails that user's writes, changing nothing; other users write fine."""
        kind, options = VARIANTS[name]
        version = int(str(options.get("xui_version", 2)))
        panel = start(kind, users={"alice": 1, "bob": 2}, **options)
        panel.set_write_fault("alice", Fault.http_status(500))
        with api_session(panel, xui_version=version) as api:
            failed = disable(panel, api, "alice", version)
            other = disable(panel, api, "bob", version)
            panel.clear_write_fault("alice")
            later = disable(panel, api, "alice", version)
        assert failed.status_code == 500
        assert (other.status_code, later.status_code) == (200, 200)
        assert [panel.users.is_enabled(n) for n in ("alice", "bob")] == [False, False]
        assert panel.counts.writes == 3
        assert panel.written_usernames == ["alice", "bob", "alice"]

    def test_slow_and_disconnected_write_faults(self, start: StartEmulator) -> None:
        """`Fault.slow` delays a write that then happens; `Fault.disconnected` hangs up first."""
        panel = start("marzneshin", users={"alice": 1, "bob": 2})
        panel.set_write_fault("alice", Fault.slow(0.3))
        panel.set_write_fault("bob", Fault.disconnected())
        with api_session(panel) as api:
            began = time.monotonic()
            slow = api.post("/api/users/alice/disable")
            elapsed = time.monotonic() - began
            with pytest.raises(httpx.TransportError):
                api.post("/api/users/bob/disable")
            read = api.get("/api/users/bob")
        assert (slow.status_code, elapsed >= 0.3) == (200, True)
        assert not panel.users.is_enabled("alice")
        assert read.json()["enabled"] is True
        assert panel.counts.writes == 2
