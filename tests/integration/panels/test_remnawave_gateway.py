"""Remnawave over loopback HTTP: API tokens and admin logins, the keyset listing,
nested counters with the lifetime beside them, and set-state by the user's id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from gateway_support import FAST_TIMEOUT, OpenSession, StartEmulator, failure, reading
from panel_support import API_KEY, PASSWORD, WRONG_API_KEY, WRONG_PASSWORD, leaks, panel_for

from usage_adapters.panels import HttpxPanelClients
from usage_adapters.panels.kept_logins import LoginKeeper, MemoryLoginStore
from usage_core.model import PANEL_TYPE_KEY
from usage_core.ports import PanelSession
from usage_core.readings import UsageResult
from usage_sandbox.emulator import EmulatedUser, Fault, PanelEmulator

pytestmark = pytest.mark.timeout(30)

PROXIED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def remnawave_row(**extra: object) -> dict[str, Any]:
    """`panel_for` options of a row naming Remnawave in its `extra` (the enum cannot)."""
    return {"panel_type": "other", "extra": {PANEL_TYPE_KEY: "remnawave", **extra}}


def counters(results: Mapping[str, UsageResult]) -> dict[str, int]:
    """Each name's counter, failing the test on any failure."""
    return {name: reading(result).bytes for name, result in results.items()}


def open_remnawave(open_session: OpenSession, panel: PanelEmulator, **row: Any) -> PanelSession:
    """A session on `panel` through a row of type `other` naming Remnawave, with its API token."""
    row.setdefault("api_key", API_KEY)
    extra = row.pop("extra", {})
    return open_session(panel, **remnawave_row(**extra), **row)


class TestSingleReads:
    """`GET /api/users/by-username/{username}`."""

    def test_reads_the_nested_counter_and_the_lifetime(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """`userTraffic.usedTrafficBytes` is the counter; after a reset the lifetime keeps all."""
        panel = start("remnawave", users={"alice": 9_000})
        session = open_remnawave(open_session, panel)
        first = reading(session.fetch_usage("alice"))
        assert (first.bytes, first.lifetime_bytes) == (9_000, 9_000)
        assert first.path == "response.userTraffic.usedTrafficBytes"
        panel.users.reset_counter("alice")
        panel.users.add_traffic("alice", download=100)
        after = reading(session.fetch_usage("alice"))
        assert (after.bytes, after.lifetime_bytes) == (100, 9_100)

    def test_api_token_needs_no_login(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """With an API token every request carries it; the login route is never called."""
        panel = start("remnawave", users={"alice": 1, "bob": 2})
        session = open_remnawave(open_session, panel)
        assert reading(session.fetch_usage("alice")).bytes == 1
        assert reading(session.fetch_usage("bob")).bytes == 2
        assert panel.counts.logins == 0

    def test_admin_login_once_and_again_after_a_401(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Without an API token the admin logs in once; an expired token is renewed once."""
        panel = start("remnawave", users={"alice": 1, "bob": 2})
        session = open_remnawave(open_session, panel, api_key=None)
        assert reading(session.fetch_usage("alice")).bytes == 1
        assert reading(session.fetch_usage("bob")).bytes == 2
        assert panel.counts.logins == 1
        panel.invalidate_sessions()
        assert reading(session.fetch_usage("alice")).bytes == 1
        assert panel.counts.logins == 2

    def test_admin_login_is_kept_across_runs(self, start: StartEmulator) -> None:
        """Every admin login notifies the panel's admins: three runs make one login."""
        panel = start("remnawave", users={"alice": 1})
        keeper = LoginKeeper(MemoryLoginStore(), lambda: b"k" * 32)
        clients = HttpxPanelClients(timeout=FAST_TIMEOUT, logins=keeper)
        row = panel_for(panel, api_key=None, **remnawave_row())
        for _ in range(3):
            session = clients.open(row)
            try:
                assert reading(session.fetch_usage("alice")).bytes == 1
            finally:
                session.close()
        assert panel.counts.logins == 1

    def test_refused_credentials(self, start: StartEmulator, open_session: OpenSession) -> None:
        """A wrong API token is a 401, a wrong password a 403 at login; nothing is read."""
        panel = start("remnawave", users={"alice": 1})
        token = open_remnawave(open_session, panel, api_key=WRONG_API_KEY)
        assert failure(token.fetch_usage("alice")).reason == "HTTP 401: Unauthorized"
        login = open_remnawave(open_session, panel, api_key=None, password=WRONG_PASSWORD)
        assert failure(login.fetch_usage("alice")).reason == "login failed: HTTP 403: Forbidden"
        counts = panel.counts
        assert (counts.rejected, counts.failed_logins, counts.user_gets) == (1, 1, 0)

    def test_no_credentials_send_nothing(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Neither an API token nor a password: a clear failure, no request."""
        panel = start("remnawave", users={"alice": 1})
        session = open_remnawave(open_session, panel, api_key=None, password=None)
        assert failure(session.fetch_usage("alice")).reason == (
            "the panel has no API token and no admin username or password"
        )
        assert panel.counts.requests == 0

    def test_unknown_user_and_missing_counter(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A 404 carries the panel's message; a user without a counter fails, never reads 0."""
        panel = start("remnawave", users={"alice": 1})
        session = open_remnawave(open_session, panel)
        assert failure(session.fetch_usage("ghost")).reason == (
            "HTTP 404: User with specified params not found"
        )
        panel.set_fault("alice", Fault.reply({"response": {"username": "alice"}}))
        assert failure(session.fetch_usage("alice")).reason == (
            "the reply has no userTraffic.usedTrafficBytes"
        )

    def test_counters_past_2_53_arrive_as_javascript_numbers(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """The panel sends `Number(bigint)`: the reading is what the panel sent, never more."""
        panel = start("remnawave", users=[EmulatedUser("alice", download=2**53 + 1)])
        result = reading(open_remnawave(open_session, panel).fetch_usage("alice"))
        assert result.bytes == 2**53

    def test_requests_outside_a_proxy_are_dropped(self, start: StartEmulator) -> None:
        """The emulated backend closes connections without the reverse proxy's headers."""
        panel = start("remnawave", users={"alice": 1})
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{panel.url}/api/users/by-username/alice", headers=bearer)
        proxied = httpx.get(
            f"{panel.url}/api/users/by-username/alice", headers={**bearer, **PROXIED}
        )
        assert proxied.status_code == 200

    def test_an_admin_token_alone_is_refused(self, start: StartEmulator) -> None:
        """An admin's token without the web page's header is a 403, as the panel's."""
        panel = start("remnawave", users={"alice": 1})
        login = httpx.post(
            f"{panel.url}/api/auth/login",
            json={"username": "sync-admin", "password": PASSWORD},
            headers=PROXIED,
        )
        token = login.json()["response"]["accessToken"]
        refused = httpx.get(
            f"{panel.url}/api/users/by-username/alice",
            headers={**PROXIED, "Authorization": f"Bearer {token}"},
        )
        assert refused.status_code == 403
        assert "API-token" in refused.json()["message"]


class TestKeysetListing:
    """`GET /api/users/stream?cursor&size`: pages one after the other, by cursor."""

    def test_pages_follow_the_cursor(self, start: StartEmulator, open_session: OpenSession) -> None:
        """Everyone of seven in pages of three: the total probe, three pages, no single read."""
        users = {f"user{i}": i * 1_000 for i in range(1, 8)}
        panel = start("remnawave", users=users)
        session = open_remnawave(open_session, panel, extra={"sync_page_size": 3})
        assert counters(session.fetch_many(sorted(users))) == users
        assert (panel.counts.list_pages, panel.counts.user_gets) == (1 + 3, 0)

    def test_few_users_of_many_are_read_singly(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """20 of 5,000: the probe says 5,000, so 20 single reads instead of 5,000 users listed."""
        users = {f"user{i:04d}": i for i in range(1, 5_001)}
        panel = start("remnawave", users=users)
        wanted = [f"user{i:04d}" for i in range(1, 5_001, 250)]
        results = open_remnawave(open_session, panel).fetch_many(wanted)
        assert counters(results) == {name: users[name] for name in wanted}
        counts = panel.counts
        assert (counts.list_pages, counts.user_gets, counts.users_serialized) == (1, 20, 21)

    def test_page_size_is_capped_at_1000(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A page size above the panel's 1,000 is clamped rather than refused with a 400."""
        users = {f"user{i:04d}": i for i in range(1, 1_202)}
        panel = start("remnawave", users=users)
        extra = {"sync_page_size": 5_000, "usage_sync_read_strategy": "listing"}
        session = open_remnawave(open_session, panel, extra=extra)
        results = session.fetch_many(["user0001", "user1201"])
        assert reading(results["user1201"]).bytes == 1_201
        assert (panel.counts.list_pages, panel.counts.user_gets) == (2, 0)

    def test_a_page_failing_midway_reads_the_rest_singly(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Page 2 fails: page 1's users come from the listing, the others from single reads."""
        users = {f"user{i}": i for i in range(1, 7)}
        panel = start("remnawave", users=users)
        panel.set_list_fault(2, Fault.http_status(500))
        session = open_remnawave(open_session, panel, extra={"sync_page_size": 2})
        results = session.fetch_many(sorted(users))
        assert counters(results) == users
        assert (panel.counts.list_pages, panel.counts.user_gets) == (1 + 2, 4)

    def test_a_cursor_that_does_not_move_ends_the_listing(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A page naming the same cursor again is not followed for ever."""
        users = {f"user{i}": i for i in range(1, 6)}
        panel = start("remnawave", users=users)
        stuck = {
            "response": {
                "users": [{"username": "user1", "userTraffic": {"usedTrafficBytes": 1}}],
                "nextCursor": "1",
                "hasMore": True,
            }
        }
        for page in range(1, 4):
            panel.set_list_fault(page, Fault.reply(stuck))
        session = open_remnawave(open_session, panel, extra={"sync_page_size": 2})
        results = session.fetch_many(sorted(users))
        assert counters(results) == users
        assert panel.counts.list_pages == 1 + 2

    def test_an_oversized_page_request_is_a_validation_error(self, start: StartEmulator) -> None:
        """The emulator refuses `size` above 1,000 with nestjs-zod's 400, as the panel does."""
        panel = start("remnawave", users={"alice": 1})
        reply = httpx.get(
            f"{panel.url}/api/users/stream",
            params={"size": 1_001},
            headers={**PROXIED, "Authorization": f"Bearer {API_KEY}"},
        )
        assert reply.status_code == 400
        assert reply.json()["message"] == "Validation failed"


class TestTokenScopes:
    """Since 2.8 an API token carries scopes; what it lacks is refused with a 403."""

    def test_a_read_only_token_reads_but_cannot_enforce(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """`users:read` lists and reads; a disable fails with the panel's reason, unretried."""
        panel = start("remnawave", users={"alice": 5}, remnawave_scopes=["users:read"])
        session = open_remnawave(open_session, panel)
        assert reading(session.fetch_many(["alice"])["alice"]).bytes == 5
        result = session.set_enabled("alice", False)
        assert (result.ok, result.retry) == (False, False)
        assert result.detail == (
            "asking the panel to disable the user: HTTP 403: Forbidden resource"
        )
        assert panel.users.is_enabled("alice")

    def test_a_token_without_the_stream_scope_reads_singly(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Only `users:by-username`: the probe and the listing are refused, users read singly."""
        users = {"alice": 5, "bob": 6}
        panel = start("remnawave", users=users, remnawave_scopes=["users:by-username"])
        results = open_remnawave(open_session, panel).fetch_many(sorted(users))
        assert counters(results) == users
        assert (panel.counts.rejected, panel.counts.user_gets) == (2, 2)


class TestSetState:
    """`POST /api/users/{id}/actions/disable|enable`, sent only when the state differs."""

    def test_disable_and_enable_by_id(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """The user is read, then its id gets the action; the result is read back."""
        panel = start("remnawave", users={"alice": 5, "bob": 6})
        session = open_remnawave(open_session, panel)
        off = session.set_enabled("bob", False)
        assert (off.ok, off.detail, off.verified) == (True, "disabled", True)
        assert not panel.users.is_enabled("bob")
        assert panel.users.is_enabled("alice")
        on = session.set_enabled("bob", True)
        assert (on.ok, on.detail) == (True, "enabled")
        assert panel.users.is_enabled("bob")
        assert panel.counts.writes == 2

    def test_already_in_the_state_sends_no_action(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """An active user asked to be enabled, a disabled one to be disabled: no write."""
        panel = start("remnawave", users={"alice": 5})
        session = open_remnawave(open_session, panel)
        assert session.set_enabled("alice", True).detail == "already enabled"
        panel.users.set_enabled("alice", False)
        assert session.set_enabled("alice", False).detail == "already disabled"
        assert panel.counts.writes == 0

    def test_a_limited_user_is_not_enabled_past_its_limit(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A user the panel itself limited counts as enabled: enabling would lift the limit."""
        panel = start("remnawave", users=[EmulatedUser("alice", download=10, data_limit=10)])
        result = open_remnawave(open_session, panel).set_enabled("alice", True)
        assert (result.ok, result.detail) == (True, "already enabled")
        assert panel.counts.writes == 0

    def test_the_panels_already_disabled_400_is_done(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A user disabled between the read and the action: the panel's A029 is success."""
        panel = start("remnawave", users={"alice": 5})
        already = {"message": "User already disabled", "errorCode": "A029"}
        panel.set_write_fault("alice", Fault.http_status(400, body=already))
        result = open_remnawave(open_session, panel).set_enabled("alice", False)
        assert (result.ok, result.detail) == (True, "already disabled")

    def test_a_failed_action_is_retried_later(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A 500 fails the request and says a later try may help."""
        panel = start("remnawave", users={"alice": 5})
        panel.set_write_fault("alice", Fault.http_status(500))
        result = open_remnawave(open_session, panel).set_enabled("alice", False)
        assert (result.ok, result.retry) == (False, True)
        assert panel.users.is_enabled("alice")


def test_no_credential_reaches_the_logs(
    start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
) -> None:
    """Logins, refusals, listings and writes log neither the token nor the password."""
    panel = start("remnawave", users={"alice": 1})
    for row in ({}, {"api_key": None}, {"api_key": None, "password": WRONG_PASSWORD}):
        session = open_remnawave(open_session, panel, **row)
        session.fetch_many(["alice", "ghost"])
        session.set_enabled("alice", False)
        session.set_enabled("alice", True)
    secrets = [API_KEY, PASSWORD, WRONG_PASSWORD, *panel.issued_tokens()]
    assert leaks(logs.records, secrets) == []


@pytest.mark.parametrize("version", ["2.2", "2.8", "3.3"])
class TestOlderVersions:
    """1.6-2.2 (flat counters, no stream), 2.3-2.8 (actions by `uuid`) and 3.x."""

    def test_reads_lists_and_sets_state(
        self, version: str, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Every version's counters are read, listed or singly, and its actions reach the user."""
        users = {"alice": 7_000, "bob": 8_000}
        panel = start("remnawave", users=users, remnawave_version=version)
        session = open_remnawave(open_session, panel)
        single = reading(session.fetch_usage("alice"))
        nested = "" if version == "2.2" else "userTraffic."
        assert single.path == f"response.{nested}usedTrafficBytes"
        assert (single.bytes, single.lifetime_bytes) == (7_000, 7_000)
        panel.reset_counts()
        results = session.fetch_many(sorted(users))
        assert counters(results) == users
        streamed = version != "2.2"
        assert panel.counts.user_gets == (0 if streamed else 2)
        off = session.set_enabled("bob", False)
        assert (off.ok, off.detail, off.verified) == (True, "disabled", True)
        assert not panel.users.is_enabled("bob")
        assert session.set_enabled("bob", True).ok
        assert panel.users.is_enabled("bob")
