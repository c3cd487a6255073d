"""Marzban and Marzneshin over loopback HTTP: one login per session, re-login on a 401."""

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
    Fault,
    PanelKind,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["marzban", "marzneshin"])
def bearer_kind(request: pytest.FixtureRequest) -> PanelKind:
    """Each of the two bearer-token panels in turn."""
    kind: PanelKind = request.param
    return kind


def label(kind: str) -> str:
    """The panel's name in log lines."""
    return kind.capitalize()


class TestBearerPanels:
    """Marzban and Marzneshin: one login per session, re-login once on a 401."""

    def test_reads_used_traffic(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """The user's `used_traffic` is the counter."""
        panel = start(bearer_kind, users={"alice": 123_456})
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (123_456, "used_traffic")

    def test_reads_the_period_counter_not_the_lifetime_one(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """After a panel-side reset the reading drops to `used_traffic`, not the lifetime total."""
        panel = start(bearer_kind, users={"alice": 9_000})
        session = open_session(panel)
        assert reading(session.fetch_usage("alice")).bytes == 9_000
        panel.users.reset_counter("alice")
        panel.users.add_traffic("alice", download=100)
        assert reading(session.fetch_usage("alice")).bytes == 100

    def test_missing_used_traffic_is_a_hard_failure(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A user object without `used_traffic` fails rather than reading 0."""
        panel = start(bearer_kind, users={"alice": 1})
        panel.set_fault("alice", Fault.reply({"username": "alice", "used_traffic": None}))
        result = failure(open_session(panel).fetch_usage("alice"))
        assert result.reason == "the reply has no used_traffic"

    def test_unknown_user_is_a_hard_failure(
        self,
        bearer_kind: PanelKind,
        start: StartEmulator,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """A 404 fails and logs "<Panel> Get User failed:" with status and preview."""
        panel = start(bearer_kind, users={"alice": 1})
        result = failure(open_session(panel).fetch_usage("ghost"))
        assert result.reason == "HTTP 404: User not found"
        [record] = records_with(logs.records, f"{label(bearer_kind)} Get User failed:")
        assert context_of(record) == {
            "status": 404,
            "username": "ghost",
            "body_preview": '{"detail":"User not found"}',
        }

    def test_one_login_serves_twenty_users(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Twenty fetches in one session log in exactly once."""
        names = [f"user{i:02d}" for i in range(20)]
        panel = start(bearer_kind, users={name: i * 1_000 for i, name in enumerate(names)})
        session = open_session(panel)
        results = [reading(session.fetch_usage(name)).bytes for name in names]
        assert results == [i * 1_000 for i in range(20)]
        assert (panel.counts.logins, panel.counts.user_gets) == (1, 20)

    def test_wrong_password_fails_and_is_not_retried_per_user(
        self,
        bearer_kind: PanelKind,
        start: StartEmulator,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """A refused login fails every fetch of the session after a single attempt."""
        panel = start(bearer_kind, users={"alice": 1, "bob": 2, "carol": 3})
        session = open_session(panel, password=WRONG_PASSWORD)
        reasons = {failure(session.fetch_usage(n)).reason for n in ("alice", "bob", "carol")}
        assert reasons == {"login failed: HTTP 401: Incorrect username or password"}
        assert (panel.counts.logins, panel.counts.user_gets) == (1, 0)
        [record] = records_with(logs.records, f"{label(bearer_kind)} Login failed")
        assert context_of(record) == {
            "status": 401,
            "body_preview": '{"detail":"Incorrect username or password"}',
        }

    def test_invalidated_token_triggers_one_relogin(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A 401 after the token expired logs in again once and retries the call."""
        panel = start(bearer_kind, users={"alice": 10, "bob": 20})
        session = open_session(panel)
        assert reading(session.fetch_usage("alice")).bytes == 10
        panel.invalidate_sessions()
        assert reading(session.fetch_usage("bob")).bytes == 20
        assert reading(session.fetch_usage("alice")).bytes == 10
        counts = panel.counts
        assert (counts.logins, counts.rejected, counts.user_gets) == (2, 1, 3)

    def test_a_second_401_is_not_retried_again(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A user that keeps answering 401 costs one re-login and one retry, then fails."""
        panel = start(bearer_kind, users={"alice": 10, "bob": 20})
        session = open_session(panel)
        reading(session.fetch_usage("alice"))
        panel.set_fault("bob", Fault.http_status(401, body={"detail": "Not authenticated"}))
        assert failure(session.fetch_usage("bob")).reason == "HTTP 401: Not authenticated"
        assert (panel.counts.logins, panel.counts.user_gets) == (2, 3)

    def test_a_401_right_after_login_does_not_log_in_again(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A fetch never logs in twice: a fresh token's 401 is a plain failure."""
        panel = start(bearer_kind, users={"alice": 10})
        panel.set_fault("alice", Fault.http_status(401))
        failure(open_session(panel).fetch_usage("alice"))
        assert (panel.counts.logins, panel.counts.user_gets) == (1, 1)

    def test_login_server_error_is_retried_by_the_next_fetch(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A 5xx login fails that fetch only; the next fetch tries once more and succeeds."""
        panel = start(bearer_kind, users={"alice": 10})
        panel.set_login_fault(Fault.http_status(503))
        session = open_session(panel)
        assert failure(session.fetch_usage("alice")).reason.startswith("login failed: HTTP 503")
        panel.set_login_fault(None)
        assert reading(session.fetch_usage("alice")).bytes == 10
        assert panel.counts.logins == 2

    def test_login_reply_without_token_is_refused(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A 2xx login reply with no `access_token` counts as a refused login."""
        panel = start(bearer_kind, users={"alice": 10})
        panel.set_login_fault(Fault.reply({"token_type": "bearer"}))
        session = open_session(panel)
        expected = "login failed: HTTP 200 without a usable access token"
        assert failure(session.fetch_usage("alice")).reason == expected
        assert failure(session.fetch_usage("alice")).reason == expected
        assert panel.counts.logins == 1

    def test_token_unfit_for_a_header_is_refused(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """An `access_token` with a line break is not sent back; the login counts as refused."""
        panel = start(bearer_kind, users={"alice": 10})
        panel.set_login_fault(Fault.reply({"access_token": "abc\r\nX-Evil: 1"}))
        result = failure(open_session(panel).fetch_usage("alice"))
        assert result.reason == "login failed: HTTP 200 without a usable access token"
        assert panel.counts.user_gets == 0

    def test_missing_password_sends_nothing(
        self, bearer_kind: PanelKind, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A panel row without a password fails without any request."""
        panel = start(bearer_kind, users={"alice": 1})
        result = failure(open_session(panel, password=None).fetch_usage("alice"))
        assert result.reason == "the panel has no admin username or password"
        assert panel.counts.requests == 0
