"""The PasarGuard and Marzneshin emulators answer as the real servers answered on loopback.

Each expected reply below is what PasarGuard v5.2.1 and Marzneshin `d3b25e2` sent to the same
request (docs/panels.md, "Checked against the real servers").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from gateway_support import OpenSession, StartEmulator, failure, reading
from panel_support import ADMIN, PASSWORD

from usage_sandbox.emulator import EmulatedUser, PanelEmulator

pytestmark = pytest.mark.timeout(30)

NAMES = ("alice", "alice2", "bob")
PYDANTIC_NOT_AN_INT = "Input should be a valid integer, unable to parse string as an integer"


def users() -> list[EmulatedUser]:
    """alice, alice2 (which a substring match of alice also finds) and bob."""
    return [EmulatedUser(name, download=1_000_000 * (i + 1)) for i, name in enumerate(NAMES)]


@contextmanager
def logged_in(panel: PanelEmulator) -> Iterator[httpx.Client]:
    """A plain client holding a bearer token from the panel's token route."""
    route = "/api/admins/token" if panel.kind == "marzneshin" else "/api/admin/token"
    with httpx.Client(base_url=panel.url, timeout=5.0) as client:
        form = {"username": ADMIN, "password": PASSWORD}
        token = client.post(route, data=form).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def listed(reply: httpx.Response, key: str) -> list[str]:
    """The usernames of a listing reply, failing on anything but a 200."""
    assert reply.status_code == 200, reply.text
    return [item["username"] for item in reply.json()[key]]


class TestPasarGuardAsTheRealPanel:
    """PasarGuard v5.2.1's replies."""

    def test_no_credentials_is_the_same_401_as_bad_ones(self, start: StartEmulator) -> None:
        """No token, a bad token and a bad key: 401 `Could not validate credentials`."""
        panel = start("pasarguard", users=users())
        with httpx.Client(base_url=panel.url, timeout=5.0) as client:
            for headers in ({}, {"Authorization": "Bearer junk"}, {"X-Api-Key": "pg_key_bad"}):
                reply = client.get("/api/user/alice", headers=headers)
                assert reply.status_code == 401, headers
                assert reply.json() == {"detail": "Could not validate credentials"}
                assert reply.headers["WWW-Authenticate"] == "Bearer"

    def test_username_filters_are_exact_and_case_sensitive(self, start: StartEmulator) -> None:
        """`username=alice` is alice alone; `ALICE` finds nobody; `usernames=` is the same."""
        panel = start("pasarguard", users=users())
        with logged_in(panel) as api:
            assert listed(api.get("/api/users", params={"username": "alice"}), "users") == ["alice"]
            assert listed(api.get("/api/users", params={"username": "ALICE"}), "users") == []
            both = [("usernames", "alice"), ("usernames", "bob")]
            assert listed(api.get("/api/users", params=both), "users") == ["alice", "bob"]

    def test_sort_keys_and_the_refusal_of_an_unknown_one(self, start: StartEmulator) -> None:
        """`edit_at` and `-online_at` sort; `bogus` is a 400 naming `UserSortOption`."""
        panel = start("pasarguard", users=users())
        with logged_in(panel) as api:
            assert api.get("/api/users", params={"sort": "edit_at,-online_at"}).status_code == 200
            reply = api.get("/api/users", params={"sort": "bogus"})
            assert reply.status_code == 400
            assert reply.json() == {"detail": "Value error, 'bogus' is not a valid UserSortOption"}

    def test_paging_parameters_as_the_panel_reads_them(self, start: StartEmulator) -> None:
        """A non-integer offset is pydantic v2's 422; a negative limit lists everyone."""
        panel = start("pasarguard", users=users())
        with logged_in(panel) as api:
            reply = api.get("/api/users", params={"offset": "abc"})
            assert reply.status_code == 422
            assert reply.json() == {"detail": {"offset": PYDANTIC_NOT_AN_INT}}
            assert listed(api.get("/api/users", params={"limit": -1}), "users") == list(NAMES)

    def test_single_replies_build_the_subscription_url_and_listings_do_not(
        self, start: StartEmulator
    ) -> None:
        """`GET /api/user/{u}` has `/sub/…`; the listing's items have `""`; roles are built in."""
        panel = start("pasarguard", users=users())
        panel.admins.set_owner("bob", "reseller")
        with logged_in(panel) as api:
            single = api.get("/api/user/alice").json()
            assert single["subscription_url"].startswith("/sub/")
            assert "auto_delete_in_days" in single
            items = api.get("/api/users").json()["users"]
            assert {item["subscription_url"] for item in items} == {""}
            admins = api.get("/api/admins").json()["admins"]
        roles = {a["username"]: (a["role"]["id"], a["role"]["name"]) for a in admins}
        assert roles == {ADMIN: (1, "owner"), "reseller": (3, "operator")}

    def test_admins_without_the_read_permission(self, start: StartEmulator) -> None:
        """An admin without `admins: read` gets 403 `Permission denied: admins.read`."""
        panel = start("pasarguard", users=users())
        panel.admins.readable = False
        with logged_in(panel) as api:
            reply = api.get("/api/admins", params={"usernames": ADMIN})
            assert reply.status_code == 403
            assert reply.json() == {"detail": "Permission denied: admins.read"}

    def test_put_refusals(self, start: StartEmulator) -> None:
        """Broken JSON names the failing position; a status the panel sets itself is a 422."""
        panel = start("pasarguard", users=users())
        with logged_in(panel) as api:
            broken = api.put(
                "/api/user/alice", content=b"{", headers={"Content-Type": "application/json"}
            )
            assert (broken.status_code, broken.json()) == (
                422,
                {"detail": {"1": "JSON decode error"}},
            )
            limited = api.put("/api/user/alice", json={"status": "limited"})
            assert limited.status_code == 422
            assert limited.json() == {
                "detail": {
                    "status": "Value error, ('status must be in', "
                    "{<UserStatus.active: 'active'>, <UserStatus.on_hold: 'on_hold'>, "
                    "<UserStatus.disabled: 'disabled'>})"
                }
            }
            assert panel.users.is_enabled("alice")


class TestMarzneshinAsTheRealPanel:
    """Marzneshin's replies (fastapi-pagination, pydantic v2)."""

    @pytest.mark.parametrize(
        ("params", "field", "message"),
        [
            ({"page": 0}, "page", "Input should be greater than or equal to 1"),
            ({"page": -1}, "page", "Input should be greater than or equal to 1"),
            ({"size": 0}, "size", "Input should be greater than or equal to 1"),
            ({"size": 101}, "size", "Input should be less than or equal to 100"),
            ({"size": "abc"}, "size", PYDANTIC_NOT_AN_INT),
            (
                {"order_by": "bogus"},
                "order_by",
                "Input should be 'username', 'used_traffic', 'data_limit', 'expire_date' "
                "or 'created_at'",
            ),
        ],
    )
    def test_listing_refusals(
        self, start: StartEmulator, params: dict[str, object], field: str, message: str
    ) -> None:
        """Each refused listing parameter is a 422 with pydantic v2's message for it."""
        panel = start("marzneshin", users=users())
        with logged_in(panel) as api:
            reply = api.get("/api/users", params=params)  # type: ignore[arg-type]
            assert reply.status_code == 422
            assert reply.json() == {"detail": {field: message}}

    def test_one_username_is_a_substring_two_are_exact(self, start: StartEmulator) -> None:
        """`username=ALI` finds alice and alice2; `alice` twice is alice alone, `ALICE` nobody."""
        panel = start("marzneshin", users=users())
        with logged_in(panel) as api:
            assert listed(api.get("/api/users", params={"username": "ALI"}), "items") == [
                "alice",
                "alice2",
            ]
            twice = [("username", "alice"), ("username", "alice"), ("size", 1)]
            reply = api.get("/api/users", params=twice)
            assert (listed(reply, "items"), reply.json()["total"]) == (["alice"], 1)
            upper = [("username", "ALICE"), ("username", "ALICE")]
            assert listed(api.get("/api/users", params=upper), "items") == []

    def test_no_token_and_a_bad_one(self, start: StartEmulator) -> None:
        """No token: 401 `Not authenticated`; a bad one: 401 `Could not validate credentials`."""
        panel = start("marzneshin", users=users())
        with httpx.Client(base_url=panel.url, timeout=5.0) as client:
            bare = client.get("/api/users/alice")
            bad = client.get("/api/users/alice", headers={"Authorization": "Bearer junk"})
        assert (bare.status_code, bare.json()) == (401, {"detail": "Not authenticated"})
        assert (bad.status_code, bad.json()) == (401, {"detail": "Could not validate credentials"})

    def test_a_non_sudo_admin_sees_only_its_own_users(self, start: StartEmulator) -> None:
        """Another admin's or an unknown user is 403 `You're not allowed`, lists omit them,
        and resetting every user is 403 `Access Denied`."""
        panel = start("marzneshin", users=users())
        panel.give_to_other_admin(["alice"])
        refused = {"detail": "You're not allowed"}
        with logged_in(panel) as api:
            for method, path in (
                ("GET", "/api/users/alice"),
                ("POST", "/api/users/alice/disable"),
                ("POST", "/api/users/alice/enable"),
                ("GET", "/api/users/nosuch"),
            ):
                reply = api.request(method, path)
                assert (reply.status_code, reply.json()) == (403, refused), path
            assert api.get("/api/users/bob").status_code == 200
            reset_all = api.post("/api/users/reset")
            assert (reset_all.status_code, reset_all.json()) == (403, {"detail": "Access Denied"})
            both = [("username", "alice"), ("username", "bob")]
            reply = api.get("/api/users", params=both)
            assert (listed(reply, "items"), reply.json()["total"]) == (["bob"], 1)
        assert panel.users.is_enabled("alice")

    def test_the_gateway_reports_another_admins_user_and_reads_its_own(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Through usage-sync: bob is read, alice fails with the panel's own 403 reason."""
        panel = start("marzneshin", users=users())
        panel.give_to_other_admin(["alice"])
        results = open_session(panel).fetch_many(["alice", "bob"])
        assert failure(results["alice"]).reason == "HTTP 403: You're not allowed"
        assert reading(results["bob"]).bytes == 3_000_000
