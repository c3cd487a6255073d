"""Every dialect's `set_enabled` over loopback HTTP: set, never toggle; touch nothing else."""

from __future__ import annotations

import json

import httpx
import pytest
from gateway_support import OpenSession, StartEmulator
from panel_support import ADMIN, API_KEY, PASSWORD

from usage_sandbox.emulator import Fault, PanelEmulator

pytestmark = pytest.mark.timeout(30)

KINDS = {
    "eylandoo": ("eylandoo", {}),
    "eylandoo-toggle-only": ("eylandoo", {"eylandoo_set_state": False}),
    "eylandoo-old-shape": ("eylandoo", {"eylandoo_shape": "old"}),
    "marzban": ("marzban", {}),
    "marzneshin": ("marzneshin", {}),
    "pasarguard": ("pasarguard", {}),
    "xui-v2": ("xui", {"xui_version": 2}),
    "xui-v3": ("xui", {"xui_version": 3, "base_path": "/p3"}),
}


@pytest.fixture(params=sorted(KINDS))
def panel(request: pytest.FixtureRequest, start: StartEmulator) -> PanelEmulator:
    """An emulator of each panel variant with users alice and bob."""
    kind, options = KINDS[request.param]
    return start(kind, users={"alice": 5, "bob": 6}, **options)


class TestSetEnabled:
    """Disabling and enabling reach the panel's state, once, and read it back."""

    def test_disable_then_enable(self, panel: PanelEmulator, open_session: OpenSession) -> None:
        """The user ends disabled, then enabled; the other user is untouched."""
        session = open_session(panel)
        off = session.set_enabled("alice", False)
        assert off.ok, off
        assert not panel.users.is_enabled("alice")
        assert panel.users.is_enabled("bob")
        on = session.set_enabled("alice", True)
        assert on.ok, on
        assert panel.users.is_enabled("alice")

    def test_already_in_the_state_is_done_without_flipping(
        self, panel: PanelEmulator, open_session: OpenSession
    ) -> None:
        """Asking for the state the user is in succeeds and never toggles it away."""
        session = open_session(panel)
        for _ in range(2):
            result = session.set_enabled("alice", True)
            assert result.ok, result
            assert panel.users.is_enabled("alice")
        assert session.set_enabled("bob", False).ok
        result = session.set_enabled("bob", False)
        assert result.ok, result
        assert not panel.users.is_enabled("bob")

    def test_unknown_user_fails_without_retry(
        self, panel: PanelEmulator, open_session: OpenSession
    ) -> None:
        """A user the panel does not have is a failure that trying again will not fix."""
        result = open_session(panel).set_enabled("nobody", False)
        assert not result.ok
        assert not result.retry

    def test_server_error_is_worth_retrying(
        self, panel: PanelEmulator, open_session: OpenSession
    ) -> None:
        """A 500 on the write fails with `retry`; the state is unchanged."""
        panel.set_write_fault("alice", Fault.http_status(500))
        result = open_session(panel).set_enabled("alice", False)
        assert not result.ok
        if panel.kind != "xui":  # 3x-ui reports errors inside HTTP 200 replies
            assert result.retry
        assert panel.users.is_enabled("alice")


def _api(panel: PanelEmulator, version: int) -> httpx.Client:
    client = httpx.Client(base_url=panel.url, timeout=5.0)
    if version >= 3:
        client.headers["X-CSRF-Token"] = client.get("/csrf-token").json()["obj"]
    assert client.post("/login", data={"username": ADMIN, "password": PASSWORD}).json()["success"]
    return client


class TestNothingElseChanges:
    """Only whether the user may connect changes; limits and plans stay as they were."""

    def test_marzban_keeps_the_next_plan(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Marzban deletes a next plan a modify leaves out: it is sent back unchanged."""
        panel = start("marzban", users={"alice": 5})
        plan = {"data_limit": 10 * 1024**3, "expire": None, "add_remaining_traffic": False}
        panel.users.set_next_plan("alice", plan)
        session = open_session(panel)
        assert session.set_enabled("alice", False).ok
        assert session.set_enabled("alice", True).ok
        user = panel.users.get("alice")
        assert user is not None
        assert user.next_plan is not None
        assert {k: user.next_plan[k] for k in plan} == plan

    @pytest.mark.parametrize("version", [2, 3])
    def test_xui_client_fields_survive(
        self, version: int, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """3x-ui's client (limits, expiry, flow, sub id) is whole after a disable and enable."""
        panel = start("xui", users={"alice": 5}, xui_version=version)
        before = _client(_api(panel, version), "alice", version)
        session = open_session(panel)
        assert session.set_enabled("alice", False).ok
        assert session.set_enabled("alice", True).ok
        after = _client(_api(panel, version), "alice", version)
        ignored = {"enable", "updated_at", "updatedAt"}
        assert {k: v for k, v in after.items() if k not in ignored} == {
            k: v for k, v in before.items() if k not in ignored
        }


def _client(api: httpx.Client, email: str, version: int) -> dict[str, object]:
    try:
        return _read_client(api, email, version)
    finally:
        api.close()


def _read_client(api: httpx.Client, email: str, version: int) -> dict[str, object]:
    if version >= 3:
        record: dict[str, object] = api.get(f"/panel/api/clients/get/{email}").json()["obj"][
            "client"
        ]
        return record
    inbound_id = api.get(f"/panel/api/inbounds/getClientTraffics/{email}").json()["obj"][
        "inboundId"
    ]
    inbound = api.get(f"/panel/api/inbounds/get/{inbound_id}").json()["obj"]
    [client] = [c for c in json.loads(inbound["settings"])["clients"] if c["email"] == email]
    return dict(client)


def test_eylandoo_without_a_state_field_is_never_toggled_blindly(
    start: StartEmulator, open_session: OpenSession
) -> None:
    """A reply that does not say whether the user is active fails rather than toggle."""
    panel = start("eylandoo", users={"alice": 5}, api_key=API_KEY)
    panel.set_fault("alice", Fault.reply({"success": True, "total_traffic_bytes": 5}))
    result = open_session(panel).set_enabled("alice", False)
    assert not result.ok
    assert panel.users.is_enabled("alice")
    assert panel.counts.writes == 0
