"""The panel emulators speak the documented shapes and fail the documented ways."""

from __future__ import annotations

import threading
import time
from contextlib import suppress

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
)

from usage_adapters.panels import HttpxPanelClients
from usage_sandbox.emulator import (
    EmulatorFleet,
    PanelEmulator,
)

pytestmark = pytest.mark.timeout(30)


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
