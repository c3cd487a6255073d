"""3x-ui over loopback HTTP: cookie login (CSRF in v3), the traffic route and its 3.1 move."""

from __future__ import annotations

import pytest
from gateway_support import (
    OpenSession,
    StartEmulator,
    failure,
    reading,
)
from panel_support import (
    WRONG_PASSWORD,
    context_of,
    records_with,
)

from usage_sandbox.emulator import (
    EmulatedUser,
    Fault,
)

pytestmark = pytest.mark.timeout(30)


class TestXui:
    """3x-ui: cookie login (CSRF in v3), the traffic route and its v3.1 replacement."""

    def test_v2_reads_up_plus_down(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A v2 panel is read from `getClientTraffics`, after a cookie login."""
        panel = start("xui", users=[EmulatedUser("alice@x", upload=300, download=700)])
        result = reading(open_session(panel).fetch_usage("alice@x"))
        assert (result.bytes, result.upload_bytes, result.download_bytes) == (1_000, 300, 700)
        assert (panel.counts.logins, panel.counts.csrf_tokens) == (1, 0)
        [record] = records_with(logs.records, "XUI Login successful.")
        assert context_of(record) == {"url": f"{panel.url}/login"}

    def test_v3_uses_csrf_and_the_clients_route_under_a_base_path(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A v3 panel gets the CSRF token, logs in, and keeps the `clients/traffic` route."""
        names = [f"c{i}@x" for i in range(5)]
        panel = start(
            "xui",
            xui_version=3,
            base_path="/s3cr3t",
            users={n: 100 + i for i, n in enumerate(names)},
        )
        session = open_session(panel)
        assert [reading(session.fetch_usage(n)).bytes for n in names] == [100, 101, 102, 103, 104]
        counts = panel.counts
        assert (counts.csrf_tokens, counts.logins, counts.user_gets) == (1, 1, 5)
        # csrf + login + (legacy 404 + clients) for the first user + 4 direct reads.
        assert counts.requests == 8

    @pytest.mark.parametrize("version", [2, 3])
    def test_one_login_serves_twenty_clients(
        self, version: int, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Twenty fetches in one session log in exactly once."""
        names = [f"client{i:02d}" for i in range(20)]
        panel = start("xui", xui_version=version, users={n: i for i, n in enumerate(names)})
        session = open_session(panel)
        assert [reading(session.fetch_usage(n)).bytes for n in names] == list(range(20))
        assert (panel.counts.logins, panel.counts.user_gets) == (1, 20)

    def test_unknown_client_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """`obj: null` for an unknown email fails rather than reading 0."""
        panel = start("xui", users={"alice": 1})
        result = failure(open_session(panel).fetch_usage("ghost"))
        assert result.reason == "the panel has no traffic record for that client"

    def test_success_false_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """HTTP 200 with `success: false` fails with the panel's message."""
        panel = start("xui", users={"alice": 1})
        panel.set_fault("alice", Fault.unsuccessful("database is locked"))
        result = failure(open_session(panel).fetch_usage("alice"))
        assert "database is locked" in result.reason

    @pytest.mark.parametrize("version", [2, 3])
    def test_wrong_credentials_fail_once_per_session(
        self,
        version: int,
        start: StartEmulator,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """An HTTP 200 `success: false` login fails every fetch after a single attempt."""
        panel = start("xui", xui_version=version, users={"alice": 1, "bob": 2})
        session = open_session(panel, password=WRONG_PASSWORD)
        first = failure(session.fetch_usage("alice"))
        assert first.reason == "login failed: HTTP 200: Invalid username or password."
        assert failure(session.fetch_usage("bob")) == first
        assert (panel.counts.logins, panel.counts.user_gets) == (1, 0)
        [record] = records_with(logs.records, "XUI Login Failed")
        assert context_of(record)["status"] == 200
        assert context_of(record)["url"] == f"{panel.url}/login"

    @pytest.mark.parametrize("version", [2, 3])
    def test_expired_session_triggers_one_relogin(
        self, version: int, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A 401 after the session expired logs in again once and retries."""
        panel = start("xui", xui_version=version, users={"alice": 5, "bob": 6})
        session = open_session(panel)
        assert reading(session.fetch_usage("alice")).bytes == 5
        panel.invalidate_sessions()
        assert reading(session.fetch_usage("bob")).bytes == 6
        assert (panel.counts.logins, panel.counts.rejected) == (2, 1)

    def test_404_from_a_working_route_relogs_in_once(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A 404 where the traffic route worked before costs one re-login and route lookup."""
        panel = start("xui", users={"alice": 5, "bob": 6})
        session = open_session(panel)
        assert reading(session.fetch_usage("alice")).bytes == 5
        panel.set_fault("bob", Fault.http_status(404))
        assert failure(session.fetch_usage("bob")).reason == "HTTP 404"
        assert (panel.counts.logins, panel.counts.user_gets) == (2, 3)
        panel.clear_fault("bob")
        assert reading(session.fetch_usage("bob")).bytes == 6
        assert panel.counts.logins == 2
