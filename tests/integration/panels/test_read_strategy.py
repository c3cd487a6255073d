"""How each panel is read: exact batches, the listing or single reads, by what the panel does."""

from __future__ import annotations

import logging

import httpx
import pytest
from gateway_support import OpenSession, StartEmulator, reading
from panel_support import ADMIN, PASSWORD, counter, wrong

from usage_sandbox.emulator import EmulatedUser, ServerCost

MIB = 1024**2
# The calibrated cost without the sleeping, for runs that only count the work.
COUNTED = ServerCost(per_user_s=0.0115, per_request_s=0.002, sleep=False)


def users(count: int) -> list[EmulatedUser]:
    """`user00000`.. with different counters."""
    return [EmulatedUser(f"user{i:05d}", download=(i % 97 + 1) * MIB) for i in range(count)]


def names(count: int, step: int = 1) -> list[str]:
    """Every `step`-th name of `users(...)`, `count` of them."""
    return [f"user{i:05d}" for i in range(0, count * step, step)]


class TestCalibratedMarzban:
    """A 5,000-user Marzban that charges ~11.5 ms a serialized user, one request at a time."""

    def test_twenty_configs_cost_twenty_users(
        self, start: StartEmulator, open_session: OpenSession, caplog: pytest.LogCaptureFixture
    ) -> None:
        """20 of 5,000: one batch, 20 users serialized, a quarter second of panel time."""
        caplog.set_level(logging.INFO)
        panel = start("marzban", users=users(5_000), realistic=True)
        results = open_session(panel).fetch_many(names(20, step=250))
        assert wrong(panel, results) == {}
        said = [record.getMessage() for record in caplog.records]
        assert "Marzban read as batches: 20 users wanted of an unknown number, 1 request" in said
        counts = panel.counts
        assert (counts.logins, counts.list_pages, counts.user_gets) == (1, 1, 0)
        assert counts.users_serialized == 20
        assert panel.stats().panel_s < 0.5

    def test_two_hundred_configs_probe_the_total_then_batch(
        self, start: StartEmulator, open_session: OpenSession, caplog: pytest.LogCaptureFixture
    ) -> None:
        """200 of 5,000: a one-user probe, then four batches of 50: 201 users serialized."""
        caplog.set_level(logging.INFO)
        panel = start("marzban", users=users(5_000), cost=COUNTED)
        results = open_session(panel).fetch_many(names(200, step=25))
        assert wrong(panel, results) == {}
        said = [record.getMessage() for record in caplog.records]
        assert "Marzban read as batches: 200 users wanted of 5000, 4 requests" in said
        counts = panel.counts
        assert (counts.list_pages, counts.user_gets, counts.users_serialized) == (5, 0, 201)

    def test_most_of_the_panel_is_listed(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """4,900 of 5,000: the probe, then the listing in pages of 250, one at a time."""
        panel = start("marzban", users=users(5_000), cost=COUNTED)
        results = open_session(panel).fetch_many(names(4_900))
        assert wrong(panel, results) == {}
        counts = panel.counts
        assert (counts.list_pages, counts.user_gets, counts.users_serialized) == (21, 0, 5_001)
        assert panel.stats().max_in_flight == 1

    def test_the_listing_is_far_more_panel_work(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Forcing the listing for the same 20 configs serializes all 5,000 users."""
        panel = start("marzban", users=users(5_000), cost=COUNTED)
        extra = {"usage_sync_read_strategy": "listing"}
        results = open_session(panel, extra=extra).fetch_many(names(20, step=250))
        assert wrong(panel, results) == {}
        assert (panel.counts.list_pages, panel.counts.users_serialized) == (20, 5_000)
        # 20 pages and the login, each with its per-request cost.
        assert panel.stats().panel_s == pytest.approx(5_000 * 0.0115 + 21 * 0.002)


class TestForcedStrategies:
    """`extra.usage_sync_read_strategy` forces a strategy, whatever the costs."""

    @pytest.mark.parametrize(
        ("strategy", "pages", "gets"),
        [("batches", 20, 0), ("singles", 0, 1_000), ("listing", 4, 0)],
    )
    def test_each_strategy_reads_the_same_counters(
        self,
        strategy: str,
        pages: int,
        gets: int,
        start: StartEmulator,
        open_session: OpenSession,
    ) -> None:
        """1,000 of 1,000 users, each strategy: right counters, its own requests."""
        panel = start("marzban", users=users(1_000))
        session = open_session(panel, extra={"usage_sync_read_strategy": strategy})
        results = session.fetch_many(names(1_000))
        assert wrong(panel, results) == {}
        assert (panel.counts.list_pages, panel.counts.user_gets) == (pages, gets)
        assert panel.counts.users_serialized == 1_000

    def test_batches_forced_on_a_panel_without_a_filter_list_it(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """Eylandoo has no exact filter: forced batches read its one listing."""
        panel = start("eylandoo", users=users(30))
        session = open_session(panel, extra={"usage_sync_read_strategy": "batches"})
        assert wrong(panel, session.fetch_many(names(30))) == {}
        assert (panel.counts.list_pages, panel.counts.user_gets) == (1, 0)

    def test_an_unknown_strategy_is_ignored(
        self, start: StartEmulator, open_session: OpenSession, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A strategy name the reader does not know leaves the choice to the costs."""
        panel = start("marzban", users=users(100))
        session = open_session(panel, extra={"usage_sync_read_strategy": "fastest"})
        assert wrong(panel, session.fetch_many(names(10))) == {}
        assert (panel.counts.list_pages, panel.counts.users_serialized) == (1, 10)
        assert "ignoring extra.usage_sync_read_strategy" in caplog.text


class TestBatches:
    """Exact batches: what they miss is read singly; names never match by substring."""

    @pytest.mark.parametrize("kind", ["marzban", "marzneshin"])
    def test_users_missing_from_a_batch_are_read_singly(
        self, kind: str, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A user the filter leaves out, and one the panel lacks, get their single read."""
        panel = start(kind, users=users(40))
        panel.omit_from_listing(["user00003"])
        wanted = [*names(10), "ghost"]
        results = open_session(panel).fetch_many(wanted)
        assert reading(results["user00003"]).bytes == counter(panel, "user00003")
        assert set(panel.seen_usernames) == {"user00003", "ghost"}
        assert panel.counts.list_pages == 1

    def test_marzneshin_batch_of_one_is_exact(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """One name is sent twice: `alice` never brings `alice2` (one value is a substring)."""
        panel = start("marzneshin", users={"alice": 5 * MIB, "alice2": 7 * MIB, "bob": MIB})
        results = open_session(panel).fetch_many(["alice"])
        assert reading(results["alice"]).bytes == 5 * MIB
        assert (panel.counts.list_pages, panel.counts.users_serialized) == (1, 1)

    def test_marzneshin_single_value_is_a_substring_match(self, start: StartEmulator) -> None:
        """The trap the batches avoid: `username=alice` alone lists alice and alice2."""
        panel = start("marzneshin", users={"alice": 5 * MIB, "alice2": 7 * MIB, "bob": MIB})
        token = httpx.post(
            f"{panel.url}/api/admins/token",
            data={"username": ADMIN, "password": PASSWORD},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        def listed(*values: str) -> list[str]:
            query = [("username", value) for value in values]
            reply = httpx.get(f"{panel.url}/api/users", params=query, headers=headers)
            return sorted(item["username"] for item in reply.json()["items"])

        assert listed("alice") == ["alice", "alice2"]
        assert listed("alice", "alice") == ["alice"]
        assert listed("alice", "bob") == ["alice", "bob"]

    def test_long_names_split_batches_below_the_url_limit(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """120 names of 200 characters: every batch URL stays below nginx's 8 KiB."""
        long = {f"{'x' * 195}{i:05d}": (i + 1) * MIB for i in range(120)}
        panel = start("marzban", users=long)
        results = open_session(panel).fetch_many(list(long))
        assert {name: reading(result).bytes for name, result in results.items()} == long
        assert panel.counts.user_gets == 0

    def test_an_overlong_url_gets_414(self, start: StartEmulator) -> None:
        """The emulator refuses a request line over 8 KiB, as nginx in front of a panel does."""
        panel = start("marzban", users=users(1))
        reply = httpx.get(f"{panel.url}/api/users", params=[("username", "u" * 9_000)])
        assert reply.status_code == 414
