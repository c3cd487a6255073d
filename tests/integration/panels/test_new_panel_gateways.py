"""PasarGuard's admins and Hiddify's uuids, GiB floats and proxy path, over loopback HTTP."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from gateway_support import OpenSession, StartEmulator, failure, reading
from panel_support import ADMIN, API_KEY, PASSWORD, records_with

from usage_sandbox.emulator import EmulatedUser, Fault, PanelEmulator

pytestmark = pytest.mark.timeout(30)

GIB = 2**30
PROXY = "/Xc9k2LmQ7proxy"


def uid(n: int) -> str:
    """The n-th test user's uuid, as Hiddify writes it (lower case)."""
    return str(uuid.UUID(int=n * 0x1000_0000_0001 + 7))


@pytest.fixture
def hiddify(start: StartEmulator) -> PanelEmulator:
    """A Hiddify panel under an admin proxy path, with three users of awkward counters."""
    users = {uid(1): 5_972_593_704, uid(2): 2**40 + 12_345, uid(3): 1}
    return start("hiddify", users=users, base_path=PROXY)


class TestHiddify:
    """Hiddify: `Hiddify-API-Key`, uuids, GiB floats, one unpaged listing, `enable`."""

    def test_single_reads_give_the_stored_bytes_exactly(
        self, hiddify: PanelEmulator, open_session: OpenSession
    ) -> None:
        """`current_usage_GB` floats come back as the panel's own byte counts."""
        session = open_session(hiddify)
        for name in (uid(1), uid(2), uid(3)):
            result = reading(session.fetch_usage(name))
            assert (result.bytes, result.path) == (hiddify.users.get(name).used, "current_usage_GB")  # type: ignore[union-attr]
        assert hiddify.counts.logins == 0

    def test_listing_serves_a_batch_in_one_request(
        self, hiddify: PanelEmulator, open_session: OpenSession
    ) -> None:
        """`fetch_many` reads the one array; a user it lacks is read singly and is not found."""
        ghost = uid(9)
        results = open_session(hiddify).fetch_many([uid(1), uid(2), ghost])
        assert reading(results[uid(2)]).bytes == 2**40 + 12_345
        assert failure(results[ghost]).reason == "HTTP 404: User not found"
        counts = hiddify.counts
        assert (counts.list_pages, counts.user_gets, counts.requests) == (1, 1, 2)

    def test_an_admin_without_users_is_404_and_reads_fall_back(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Hiddify answers an empty listing with 404 "You have no user": singles answer then."""
        panel = start("hiddify", users={}, base_path=PROXY)
        result = open_session(panel).fetch_many([uid(1)])
        assert failure(result[uid(1)]).reason == "HTTP 404: User not found"
        assert panel.counts.list_pages == 1

    def test_names_that_are_not_uuids_and_wrong_paths(
        self, hiddify: PanelEmulator, open_session: OpenSession
    ) -> None:
        """A name that is not a uuid meets the panel's 500, a URL without the proxy path its 400."""
        session = open_session(hiddify)
        reason = failure(session.fetch_usage("alice")).reason
        assert reason.startswith("HTTP 500: 404 Not Found: The requested URL was not found")
        refused = session.set_enabled("alice", False)
        assert (refused.ok, refused.detail, refused.retry) == (
            False,
            "a Hiddify panel_user_id must be the user's uuid",
            False,
        )
        assert hiddify.counts.writes == 0
        wrong = open_session(hiddify, url=hiddify.origin)
        assert failure(wrong.fetch_usage(uid(1))).reason == "HTTP 400: invalid request"

    def test_a_wrong_key_is_403_and_a_missing_one_sends_nothing(
        self, hiddify: PanelEmulator, open_session: OpenSession
    ) -> None:
        """Hiddify refuses a wrong key with 403 "Unathorized"; without a key nothing is sent."""
        wrong = open_session(hiddify, api_key="not-the-admin-uuid")
        assert failure(wrong.fetch_usage(uid(1))).reason == "HTTP 403: Unathorized"
        before = hiddify.counts.requests
        missing = open_session(hiddify, api_key=None)
        assert failure(missing.fetch_usage(uid(1))).reason.startswith("the panel has no API key")
        assert hiddify.counts.requests == before

    def test_set_enabled_sends_only_enable_and_keeps_the_usage(
        self, hiddify: PanelEmulator, open_session: OpenSession
    ) -> None:
        """Disable, then enable: `enable` flips, the usage stays; the same state needs no PATCH."""
        session = open_session(hiddify)
        off = session.set_enabled(uid(1), False)
        assert (off.ok, off.detail, off.verified) == (True, "disabled", True)
        assert not hiddify.users.is_enabled(uid(1))
        again = session.set_enabled(uid(1), False)
        assert (again.ok, again.detail) == (True, "already disabled")
        assert session.set_enabled(uid(1), True).ok
        assert hiddify.users.is_enabled(uid(1))
        assert hiddify.users.get(uid(1)).used == 5_972_593_704  # type: ignore[union-attr]
        assert hiddify.counts.writes == 2

    def test_a_failing_patch_is_retried_later(
        self, hiddify: PanelEmulator, open_session: OpenSession
    ) -> None:
        """A 500 on the PATCH fails with `retry`; the user stays enabled."""
        hiddify.set_write_fault(uid(1), Fault.http_status(500))
        result = open_session(hiddify).set_enabled(uid(1), False)
        assert (result.ok, result.retry) == (False, True)
        assert hiddify.users.is_enabled(uid(1))


@pytest.fixture
def pasarguard(start: StartEmulator) -> PanelEmulator:
    """A PasarGuard panel: alice is the login admin's, bob and carol belong to `reseller`."""
    panel = start(
        "pasarguard",
        users=[
            EmulatedUser(n, download=1_000 * (i + 1))
            for i, n in enumerate(("alice", "bob", "carol"))
        ],
    )
    panel.admins.set_owner("bob", "reseller")
    panel.admins.set_owner("carol", "reseller")
    return panel


class TestPasarGuardAdmins:
    """A limited or disabled admin's users are counted and reported as unable to connect."""

    def test_users_of_a_limited_admin_are_reported(
        self,
        pasarguard: PanelEmulator,
        open_session: OpenSession,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """bob and carol carry the reason and a log line each; alice is fine; one admins call."""
        pasarguard.admins.set_admin("reseller", "limited")
        caplog.set_level(logging.WARNING)
        results = open_session(pasarguard).fetch_many(["alice", "bob", "carol"])
        reason = "admin reseller is limited: the panel removed its users from the nodes"
        assert {name: reading(r).blocked for name, r in results.items()} == {
            "alice": None,
            "bob": reason,
            "carol": reason,
        }
        assert reading(results["bob"]).bytes == 2_000
        for name in ("bob", "carol"):
            line = f"PasarGuard user {name} cannot connect: {reason}"
            assert len(records_with(caplog.records, line)) == 1
        assert pasarguard.counts.requests == 3  # login, one listing page, one admins lookup

    def test_a_role_that_keeps_users_connected_reports_nothing(
        self, pasarguard: PanelEmulator, open_session: OpenSession
    ) -> None:
        """With `disconnect_users_when_limited` false the limited admin's users still connect."""
        pasarguard.admins.set_admin("reseller", "limited", disconnect_when_limited=False)
        assert reading(open_session(pasarguard).fetch_usage("bob")).blocked is None

    def test_without_permission_only_the_own_admin_is_checked(
        self, pasarguard: PanelEmulator, open_session: OpenSession
    ) -> None:
        """403 on `/api/admins`: `/api/admin` still tells whether the own admin is limited."""
        pasarguard.admins.readable = False
        pasarguard.admins.set_admin(pasarguard.admins.login_admin, "limited")
        pasarguard.admins.set_admin("reseller", "limited")
        results = open_session(pasarguard).fetch_many(["alice", "bob"])
        assert reading(results["alice"]).blocked is not None
        assert reading(results["bob"]).blocked is None

    def test_a_failing_lookup_keeps_the_readings(
        self, pasarguard: PanelEmulator, open_session: OpenSession
    ) -> None:
        """When the admins cannot be read at all, the counters still arrive, unmarked."""
        pasarguard.admins.readable = False
        pasarguard.admins.set_owner("alice", "reseller")
        pasarguard.admins.set_admin("reseller", "disabled")
        result = reading(open_session(pasarguard).fetch_usage("alice"))
        assert (result.bytes, result.blocked) == (1_000, None)

    def test_a_disabled_login_admin_cannot_log_in(
        self, pasarguard: PanelEmulator, open_session: OpenSession
    ) -> None:
        """PasarGuard refuses a disabled admin's login with 403, a failure for every user."""
        pasarguard.admins.set_admin(pasarguard.admins.login_admin, "disabled")
        result = failure(open_session(pasarguard).fetch_usage("alice"))
        assert result.reason == "login failed: HTTP 403: your account has been disabled"

    def test_an_api_key_replaces_the_login(
        self, pasarguard: PanelEmulator, open_session: OpenSession
    ) -> None:
        """With the row's `api_token`, `X-Api-Key` goes with every request and nobody logs in."""
        session = open_session(pasarguard, api_key=API_KEY, password=None)
        assert reading(session.fetch_usage("alice")).bytes == 1_000
        assert pasarguard.counts.logins == 0
        wrong = open_session(pasarguard, api_key="pg_key_wrong-SECRET")
        assert failure(wrong.fetch_usage("alice")).reason == (
            "HTTP 401: Could not validate credentials"
        )
        assert pasarguard.counts.logins == 0

    def test_set_enabled_keeps_the_next_plan(
        self, pasarguard: PanelEmulator, open_session: OpenSession
    ) -> None:
        """Only `status` is sent: PasarGuard leaves the user's next plan alone."""
        plan = {"data_limit": 10 * GIB, "expire": None, "add_remaining_traffic": False}
        pasarguard.users.set_next_plan("alice", plan)
        session = open_session(pasarguard)
        assert session.set_enabled("alice", False).ok
        assert not pasarguard.users.is_enabled("alice")
        assert session.set_enabled("alice", True).ok
        user = pasarguard.users.get("alice")
        assert user is not None
        assert user.next_plan == plan


def test_pasarguard_listing_costs_what_the_real_panel_measured(start: StartEmulator) -> None:
    """With the measured cost, a 1,000-user PasarGuard page is 0.36 s of panel work."""
    panel = start("pasarguard", users={f"u{i:04d}": i for i in range(1_000)}, realistic=True)
    with httpx.Client(base_url=panel.url, timeout=10) as api:
        token = api.post("/api/admin/token", data={"username": ADMIN, "password": PASSWORD}).json()[
            "access_token"
        ]
        page = api.get(
            "/api/users",
            params={"offset": 0, "limit": 1_000},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert len(page.json()["users"]) == 1_000
    assert panel.stats().panel_s == pytest.approx(0.36)
