"""API keys in place of logins: 3x-ui v3 API tokens, and the fallback when a panel refuses one."""

from __future__ import annotations

import pytest
from gateway_support import FAST_TIMEOUT, OpenSession, StartEmulator, failure, reading
from panel_support import API_KEY, WRONG_API_KEY, panel_for, records_with

from usage_adapters.panels import HttpxPanelClients
from usage_adapters.panels.kept_logins import LoginKeeper, MemoryLoginStore


class TestXuiApiToken:
    """A 3x-ui row with an `api_token` sends it as `Authorization: Bearer`."""

    def test_a_v3_token_needs_no_login_nor_csrf(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Reads and a write with the token: no login, no CSRF token, nothing refused."""
        panel = start("xui", users={"alice": 5, "bob": 6}, xui_version=3, base_path="/b")
        session = open_session(panel, api_key=API_KEY)
        assert reading(session.fetch_many(["alice", "bob"])["bob"]).bytes == 6
        assert reading(session.fetch_usage("bob")).bytes == 6
        assert session.set_enabled("alice", False).ok
        assert not panel.users.is_enabled("alice")
        counts = panel.counts
        assert (counts.logins, counts.csrf_tokens, counts.rejected) == (0, 0, 0)

    @pytest.mark.parametrize("version", [2, 3])
    def test_a_refused_token_falls_back_to_the_login(
        self,
        version: int,
        start: StartEmulator,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """v2 (no tokens) or a revoked v3 token: one 401, then the cookie login serves all."""
        panel = start("xui", users={"alice": 5, "bob": 6}, xui_version=version)
        session = open_session(panel, api_key=WRONG_API_KEY)
        assert reading(session.fetch_usage("alice")).bytes == 5
        assert reading(session.fetch_many(["alice", "bob"])["bob"]).bytes == 6
        counts = panel.counts
        assert (counts.logins, counts.rejected) == (1, 1)
        message = "XUI API token refused; logging in with the username and password"
        assert len(records_with(logs.records, message)) == 1
        assert not records_with(logs.records, "XUI session expired; logging in again")

    def test_a_refused_token_without_a_password_fails_clearly(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Nothing to fall back on: every user fails with one reason, after one request."""
        panel = start("xui", users={"alice": 5, "bob": 6}, xui_version=3)
        session = open_session(panel, api_key=WRONG_API_KEY, password=None)
        results = session.fetch_many(["alice", "bob"])
        assert {failure(result).reason for result in results.values()} == {
            "the panel refused its API token"
        }
        assert (panel.counts.logins, panel.counts.requests) == (0, 1)

    def test_the_fallback_session_is_kept(self, start: StartEmulator) -> None:
        """After one fallback, later sessions use the kept cookie and do not try the token."""
        panel = start("xui", users={"alice": 5}, xui_version=2)
        logins = LoginKeeper(MemoryLoginStore(), lambda: b"k" * 32)
        clients = HttpxPanelClients(timeout=FAST_TIMEOUT, logins=logins)
        row = panel_for(panel, api_key=WRONG_API_KEY)
        for _ in range(3):
            session = clients.open(row)
            assert reading(session.fetch_usage("alice")).bytes == 5
            session.close()
        assert (panel.counts.logins, panel.counts.rejected) == (1, 1)


def test_a_header_key_is_sent_as_the_row_holds_it(
    start: StartEmulator, open_session: OpenSession
) -> None:
    """`api_key_auth` sends the row's token in the named header, with or without a scheme."""
    from usage_adapters.panels.auth import api_key_auth  # noqa: PLC0415

    panel = panel_for(start("marzban"), api_key=f"  {API_KEY} ")
    header = api_key_auth(panel, "X-Api-Key")
    assert header is not None
    assert header.headers(None)["X-Api-Key"] == API_KEY
    bearer = api_key_auth(panel, "Authorization", scheme="Bearer")
    assert bearer is not None
    assert bearer.headers(None)["Authorization"] == f"Bearer {API_KEY}"
    assert api_key_auth(panel_for(start("marzban"), api_key=None), "X-Api-Key") is None
    assert api_key_auth(panel_for(start("marzban"), api_key="  "), "X-Api-Key") is None
