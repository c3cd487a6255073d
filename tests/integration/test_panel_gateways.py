"""The httpx panel gateways against the stdlib panel emulators, over loopback HTTP."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from typing import Any

import httpx
import pytest
from panel_support import (
    ADMIN,
    API_KEY,
    PASSWORD,
    VARIANTS,
    WRONG_API_KEY,
    WRONG_PASSWORD,
    closed_port_url,
    context_of,
    leaks,
    panel_for,
    records_with,
)

from usage_adapters.panels import HttpxPanelClients
from usage_core.log import BODY_PREVIEW_CHARS
from usage_core.model import Panel, Secret
from usage_core.ports import PanelClients, PanelSession
from usage_core.readings import CounterReading, HardFailure, UsageResult
from usage_sandbox.emulator import (
    EmulatedUser,
    EmulatorFleet,
    Fault,
    PanelEmulator,
    PanelKind,
)

pytestmark = pytest.mark.timeout(30)

FAST_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
SLOW_PANEL_TIMEOUT = httpx.Timeout(0.3, connect=0.5)

StartEmulator = Callable[..., PanelEmulator]
OpenSession = Callable[..., PanelSession]


@pytest.fixture
def clients() -> HttpxPanelClients:
    """Gateways with short, explicit timeouts."""
    return HttpxPanelClients(timeout=FAST_TIMEOUT)


@pytest.fixture
def start() -> Iterator[StartEmulator]:
    """Start emulators with the test credentials; all are closed after the test."""
    with ExitStack() as stack:

        def _start(kind: PanelKind, **options: Any) -> PanelEmulator:
            options.setdefault("username", ADMIN)
            options.setdefault("password", PASSWORD)
            options.setdefault("api_key", API_KEY)
            return stack.enter_context(PanelEmulator(kind, **options))

        yield _start


@pytest.fixture
def open_session(clients: HttpxPanelClients) -> Iterator[OpenSession]:
    """Open gateway sessions on emulators; all are closed after the test."""
    sessions: list[PanelSession] = []

    def _open(
        emulator: PanelEmulator, *, with_clients: PanelClients | None = None, **panel: Any
    ) -> PanelSession:
        session = (with_clients or clients).open(panel_for(emulator, **panel))
        sessions.append(session)
        return session

    yield _open
    for session in sessions:
        session.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of every logger, DEBUG and up."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, start: StartEmulator) -> Callable[..., PanelEmulator]:
    """Start an emulator of each panel variant in turn (eylandoo, marzban, ..., xui-v3)."""
    kind, options = VARIANTS[request.param]

    def _start(**extra: Any) -> PanelEmulator:
        return start(kind, **{**options, **extra})

    return _start


def reading(result: UsageResult) -> CounterReading:
    """`result` as a reading, failing the test with the reason otherwise."""
    assert isinstance(result, CounterReading), result
    return result


def failure(result: UsageResult) -> HardFailure:
    """`result` as a hard failure, failing the test otherwise."""
    assert isinstance(result, HardFailure), result
    return result


class TestEylandoo:
    """Eylandoo: API key header, reply shapes and the core's field precedence."""

    def test_flat_reply_reads_total_traffic_bytes(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """The current flat reply gives `total_traffic_bytes`, logged in the seed's words."""
        panel = start("eylandoo", users={"alice": 5_000})
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (5_000, "total_traffic_bytes")
        [record] = records_with(logs.records, "Eylandoo usage from total_traffic_bytes")
        assert context_of(record) == {"username": "alice", "usage_bytes": 5_000}

    def test_user_info_wrapper_reads_user_info_total(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A `userInfo`-wrapped reply is read from `userInfo.total_traffic_bytes`."""
        panel = start("eylandoo", users={"alice": 7_000}, eylandoo_shape="user_info")
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (7_000, "userInfo.total_traffic_bytes")
        assert records_with(logs.records, "Eylandoo usage from userInfo.total_traffic_bytes")

    def test_old_reply_reads_data_used(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """The Oct-2025 `{status, data}` reply is read from `data.data_used`, per user shape."""
        panel = start("eylandoo", users={"alice": 1_000, "bob": 2_000})
        panel.set_shape("bob", "old")
        session = open_session(panel)
        assert reading(session.fetch_usage("alice")).path == "total_traffic_bytes"
        result = reading(session.fetch_usage("bob"))
        assert (result.bytes, result.path) == (2_000, "data.data_used")
        [record] = records_with(logs.records, "Eylandoo usage from data.data_used")
        assert context_of(record) == {"username": "bob", "usage_bytes": 2_000}

    def test_zero_total_with_traffic_falls_back_to_the_sum(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A flat reply whose total is stuck at 0 is read as upload + download."""
        panel = start("eylandoo", users={"alice": 0})
        panel.set_fault(
            "alice",
            Fault.reply(
                {
                    "success": True,
                    "total_traffic_bytes": 0,
                    "upload_bytes": 10,
                    "download_bytes": 32,
                }
            ),
        )
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (42, "upload_bytes + download_bytes")
        [record] = records_with(logs.records, "Eylandoo usage from upload_bytes + download_bytes")
        assert context_of(record) == {
            "username": "alice",
            "upload_bytes": 10,
            "download_bytes": 32,
            "total_usage_bytes": 42,
        }

    def test_user_info_with_only_upload_and_download_reads_the_sum(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A `userInfo` without a total is read as its upload + download."""
        panel = start("eylandoo", users={"alice": 0})
        panel.set_fault(
            "alice",
            Fault.reply({"success": True, "userInfo": {"upload_bytes": 5, "download_bytes": 6}}),
        )
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (11, "userInfo.upload_bytes + download_bytes")
        assert records_with(
            logs.records, "Eylandoo usage from userInfo.upload_bytes + download_bytes"
        )

    def test_reply_without_usage_fields_reads_zero(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A successful reply with no traffic field counts as 0 bytes, path `none`."""
        panel = start("eylandoo", users={"alice": 0})
        panel.set_fault("alice", Fault.reply({"success": True, "username": "alice"}))
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (0, "none")
        [record] = records_with(
            logs.records, "Eylandoo usage: no traffic data fields found, returning 0"
        )
        assert context_of(record) == {"username": "alice"}

    def test_success_false_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """HTTP 200 with `success: false` fails, with the panel's message as the reason."""
        panel = start("eylandoo", users={"alice": 1})
        panel.set_fault("alice", Fault.unsuccessful("quota service down"))
        result = failure(open_session(panel).fetch_usage("alice"))
        assert "quota service down" in result.reason
        [record] = records_with(
            logs.records, "Eylandoo Get User Usage: failed to retrieve user data"
        )
        assert context_of(record)["username"] == "alice"
        assert record.levelno == logging.WARNING

    def test_unknown_user_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A 404 fails and logs "Eylandoo Get User failed:" with status and body preview."""
        panel = start("eylandoo", users={"alice": 1})
        result = failure(open_session(panel).fetch_usage("ghost"))
        assert result.reason == "HTTP 404: User not found or permission denied"
        [record] = records_with(logs.records, "Eylandoo Get User failed:")
        assert context_of(record) == {
            "status": 404,
            "username": "ghost",
            "body_preview": '{"success":false,"message":"User not found or permission denied"}',
        }

    def test_wrong_api_key_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A key the panel rejects gives a 401 hard failure."""
        panel = start("eylandoo", users={"alice": 1})
        result = failure(open_session(panel, api_key=WRONG_API_KEY).fetch_usage("alice"))
        assert result.reason == "HTTP 401: Invalid or inactive API key"
        assert panel.counts.rejected == 1

    def test_missing_api_token_sends_nothing(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A panel row without an API token fails without any request."""
        panel = start("eylandoo", users={"alice": 1})
        result = failure(open_session(panel, api_key=None).fetch_usage("alice"))
        assert result.reason == "the panel has no API token"
        assert panel.counts.requests == 0

    @pytest.mark.parametrize("key", ["clé-SECRET-non-ascii", "line\nbreak-SECRET"])
    def test_api_token_unfit_for_a_header_sends_nothing(
        self,
        key: str,
        start: StartEmulator,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """A non-ASCII or multi-line API token fails without a request and without raising."""
        panel = start("eylandoo", users={"alice": 1})
        result = failure(open_session(panel, api_key=key).fetch_usage("alice"))
        assert result.reason == "the panel's API token has characters a header cannot carry"
        assert panel.counts.requests == 0
        assert leaks(logs.records, ["SECRET"]) == []

    def test_non_json_body_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A 2xx HTML page fails (it is not a 0-byte reading)."""
        panel = start("eylandoo", users={"alice": 1})
        panel.set_fault("alice", Fault.malformed("<html>maintenance</html>"))
        assert failure(open_session(panel).fetch_usage("alice")).reason == "the reply is not JSON"
        assert records_with(logs.records, "Eylandoo Get User Usage: failed to retrieve user data")

    def test_unexpected_json_type_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A JSON array where an object belongs fails without raising."""
        panel = start("eylandoo", users={"alice": 1})
        panel.set_fault("alice", Fault.reply([1, 2, 3]))
        result = failure(open_session(panel).fetch_usage("alice"))
        assert result.reason == "the reply is not a JSON object"

    def test_body_preview_is_cut_to_the_limit(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A long error body is logged as a preview of at most 500 characters."""
        panel = start("eylandoo", users={"alice": 1})
        panel.set_fault("alice", Fault.http_status(502, body={"message": "x" * 5_000}))
        failure(open_session(panel).fetch_usage("alice"))
        [record] = records_with(logs.records, "Eylandoo Get User failed:")
        preview = context_of(record)["body_preview"]
        assert isinstance(preview, str)
        assert len(preview) == BODY_PREVIEW_CHARS


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


class TestEveryPanel:
    """Behaviour every gateway shares: transport failures, encoding, dispatch."""

    def test_happy_path(
        self, variant: Callable[..., PanelEmulator], open_session: OpenSession
    ) -> None:
        """Each panel variant yields the emulator's counter."""
        panel = variant(users={"alice": 4_096})
        assert reading(open_session(panel).fetch_usage("alice")).bytes == 4_096

    def test_username_reaches_the_panel_intact(
        self, variant: Callable[..., PanelEmulator], open_session: OpenSession
    ) -> None:
        """Names with `/`, `..`, spaces, `?#%` and non-ASCII arrive as one decoded segment."""
        names = ["a/../b c", "..", "q?x=1#frag", "100%", "ünï código"]
        panel = variant(users={name: 1_000 + i for i, name in enumerate(names)})
        session = open_session(panel)
        assert [reading(session.fetch_usage(n)).bytes for n in names] == [
            1_000 + i for i in range(len(names))
        ]
        assert sorted(set(panel.seen_usernames)) == sorted(names)

    def test_dead_panel_fails_fast(
        self,
        variant: Callable[..., PanelEmulator],
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """A closed port gives a hard failure at once, logged at ERROR, never an exception."""
        panel = variant(users={"alice": 1})
        session = open_session(panel, url=closed_port_url() + panel.base_path)
        began = time.monotonic()
        result = failure(session.fetch_usage("alice"))
        assert time.monotonic() - began < 1.0
        assert "could not reach the panel (ConnectError)" in result.reason
        assert any(r.levelno == logging.ERROR for r in logs.records if r.name.startswith("usage"))

    def test_slow_panel_times_out_quickly(
        self, variant: Callable[..., PanelEmulator], open_session: OpenSession
    ) -> None:
        """A panel slower than the read timeout gives a hard failure within about that timeout."""
        panel = variant(users={"alice": 1}, latency_s=5.0)
        impatient = HttpxPanelClients(timeout=SLOW_PANEL_TIMEOUT)
        session = open_session(panel, with_clients=impatient)
        began = time.monotonic()
        result = failure(session.fetch_usage("alice"))
        assert time.monotonic() - began < 1.5
        assert "the panel did not answer in time (ReadTimeout)" in result.reason

    def test_slow_single_user_times_out(
        self, variant: Callable[..., PanelEmulator], open_session: OpenSession
    ) -> None:
        """One slow user fails by timeout while the next user of the session still reads."""
        panel = variant(users={"slow": 1, "quick": 2})
        panel.set_fault("slow", Fault.slow(5.0))
        impatient = HttpxPanelClients(timeout=SLOW_PANEL_TIMEOUT)
        session = open_session(panel, with_clients=impatient)
        assert "did not answer in time" in failure(session.fetch_usage("slow")).reason
        assert reading(session.fetch_usage("quick")).bytes == 2

    def test_server_error_and_garbage_are_hard_failures(
        self, variant: Callable[..., PanelEmulator], open_session: OpenSession
    ) -> None:
        """A 500, a non-JSON 200 and a truncated JSON body all fail without raising."""
        panel = variant(users={"e500": 1, "html": 2, "cut": 3})
        panel.set_fault("e500", Fault.http_status(500))
        panel.set_fault("html", Fault.malformed("<html>oops"))
        panel.set_fault("cut", Fault.malformed('{"success": true, "up', status=200))
        session = open_session(panel)
        assert failure(session.fetch_usage("e500")).reason.startswith("HTTP 500")
        assert failure(session.fetch_usage("html")).reason == "the reply is not JSON"
        assert failure(session.fetch_usage("cut")).reason == "the reply is not JSON"

    def test_oversized_reply_is_a_hard_failure(
        self, variant: Callable[..., PanelEmulator], open_session: OpenSession
    ) -> None:
        """A reply larger than the body cap is not parsed."""
        panel = variant(users={"alice": 1})
        panel.set_fault("alice", Fault.reply({"padding": "x" * 10_000}))
        capped = HttpxPanelClients(timeout=FAST_TIMEOUT, max_body_bytes=4_096)
        result = failure(open_session(panel, with_clients=capped).fetch_usage("alice"))
        assert result.reason == "the reply is larger than 4096 bytes"

    def test_unsupported_panel_type(self, clients: HttpxPanelClients) -> None:
        """A panel type without a gateway gives a session that always fails."""
        panel = Panel(id=9, name="h", url="http://127.0.0.1:9", panel_type="hiddify")
        session = clients.open(panel)
        assert failure(session.fetch_usage("alice")).reason == "unsupported panel type 'hiddify'"
        session.close()

    def test_invalid_url_is_a_hard_failure(self, clients: HttpxPanelClients) -> None:
        """A panel URL httpx cannot parse fails at fetch time instead of raising."""
        for url in ("http://[::1", "panel.example.com:2053", ""):
            panel = Panel(
                id=9, name="bad", url=url, panel_type="marzban", username="a", password=Secret("b")
            )
            session = clients.open(panel)
            assert isinstance(session.fetch_usage("alice"), HardFailure)
            session.close()


class TestNoCredentialInLogs:
    """No log record of any logger ever carries a password, API key or token."""

    def test_every_failure_mode_keeps_credentials_out_of_the_logs(
        self,
        start: StartEmulator,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """A run through every success and failure mode leaves no secret in any record."""
        reasons: list[str] = []
        emulators: list[PanelEmulator] = []
        impatient = HttpxPanelClients(timeout=SLOW_PANEL_TIMEOUT)
        for kind, options in VARIANTS.values():
            panel = start(kind, **options, users={"alice": 1, "bob": 2, "echo": 3, "slow": 4})
            emulators.append(panel)
            session = open_session(panel)
            reasons.append(str(session.fetch_usage("alice")))
            # Error bodies that echo every credential the session holds.
            held = [PASSWORD, API_KEY, *panel.issued_tokens()]
            echo = {"detail": f"rejected {' '.join(held)}", "access_token": held[-1]}
            panel.set_fault("echo", Fault.http_status(500, body=echo))
            reasons.append(str(session.fetch_usage("echo")))
            panel.set_fault("echo", Fault.malformed(f"<html>{' | '.join(held)}</html>"))
            reasons.append(str(session.fetch_usage("echo")))
            panel.set_fault("echo", Fault.reply({"success": False, "message": held[-1]}))
            reasons.append(str(session.fetch_usage("echo")))
            reasons.append(str(session.fetch_usage("ghost")))
            # Expired sessions, then wrong credentials, a slow user and a dead panel.
            panel.invalidate_sessions()
            reasons.append(str(session.fetch_usage("bob")))
            wrong = open_session(panel, password=WRONG_PASSWORD, api_key=WRONG_API_KEY)
            reasons.append(str(wrong.fetch_usage("alice")))
            panel.set_fault("slow", Fault.slow(2.0))
            reasons.append(str(open_session(panel, with_clients=impatient).fetch_usage("slow")))
            dead = open_session(panel, url=closed_port_url())
            reasons.append(str(dead.fetch_usage("alice")))

        secrets = {PASSWORD, API_KEY, WRONG_PASSWORD, WRONG_API_KEY}
        for panel in emulators:
            secrets.update(panel.issued_tokens())
        assert all(len(s) >= 16 for s in secrets)
        assert len(logs.records) > 50
        assert leaks(logs.records, [*secrets, "SECRET"]) == []
        assert [r for r in reasons if any(s in r for s in [*secrets, "SECRET"])] == []


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
