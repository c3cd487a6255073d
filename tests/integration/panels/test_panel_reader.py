"""The shared reader's `fetch_many`: listings first, single reads for what they miss, budgets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from panel_support import (
    ADMIN,
    API_KEY,
    KIND_DEFAULT,
    PASSWORD,
    VARIANTS,
    WRONG_API_KEY,
    WRONG_PASSWORD,
    Default,
    closed_port_url,
    context_of,
    counter,
    leaks,
    panel_for,
    records_with,
    wrong,
)

from usage_adapters.panels import HttpxPanelClients, reader
from usage_adapters.panels.http import decode_json
from usage_core.model import Panel
from usage_core.ports import PanelSession
from usage_core.readings import CounterReading, HardFailure, UsageResult
from usage_sandbox.emulator import (
    EYLANDOO_LIST_SHAPES,
    EmulatedUser,
    EylandooListShape,
    Fault,
    PanelEmulator,
)

pytestmark = pytest.mark.timeout(60)

FAST_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
OUT_OF_TIME = HardFailure("the panel's time budget ran out")
LABELS = {
    "eylandoo": "Eylandoo",
    "marzban": "Marzban",
    "marzneshin": "Marzneshin",
    "pasarguard": "PasarGuard",
    "xui-v2": "XUI",
    "xui-v3": "XUI",
}
PAGED = ["marzban", "marzneshin"]

StartVariant = Callable[..., PanelEmulator]
OpenSession = Callable[..., PanelSession]


def seeded(count: int) -> list[EmulatedUser]:
    """`count` users `u00000`... with distinct upload, download and lifetime counters."""
    return [
        EmulatedUser(f"u{i:05d}", upload=i * 3, download=i * 7 + 1, settled=i) for i in range(count)
    ]


def names_of(users: Sequence[EmulatedUser]) -> list[str]:
    """The users' names, in order."""
    return [user.username for user in users]


def reading(result: UsageResult) -> CounterReading:
    """`result` as a reading, failing the test with the reason otherwise."""
    assert isinstance(result, CounterReading), result
    return result


def listing_requests(variant: str, users: int, page_size: int | None = None) -> tuple[int, int]:
    """(logins, list pages) a whole listing of `users` costs on `variant`, without the probe."""
    if variant == "eylandoo":
        return 0, 1
    if variant.startswith("xui"):
        return 1, 1
    size = page_size or {"marzban": 250, "pasarguard": 1000}.get(variant, 100)
    size = min(size, 100) if variant == "marzneshin" else size
    return 1, -(-users // size)


def probes(variant: str) -> int:
    """The one-item `total` page a panel with an exact filter is asked for before its listing."""
    return 1 if variant in ("marzban", "marzneshin", "pasarguard") else 0


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of every logger, DEBUG and up."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Closes the emulators and sessions a test opened."""
    with ExitStack() as opened:
        yield opened


@pytest.fixture
def start(stack: ExitStack) -> StartVariant:
    """Start an emulator of a variant name ("eylandoo", ..., "xui-v3") with test credentials."""

    def _start(variant: str, **options: Any) -> PanelEmulator:
        kind, defaults = VARIANTS[variant]
        merged = {"username": ADMIN, "password": PASSWORD, "api_key": API_KEY, **defaults}
        return stack.enter_context(PanelEmulator(kind, **{**merged, **options}))

    return _start


@pytest.fixture
def open_session(stack: ExitStack) -> OpenSession:
    """Open a gateway session on an emulator: `extra` keys and client options as asked."""

    def _open(
        emulator: PanelEmulator,
        *,
        extra: dict[str, object] | None = None,
        url: str | None = None,
        password: str | None = PASSWORD,
        api_key: str | Default | None = KIND_DEFAULT,
        **client_options: Any,
    ) -> PanelSession:
        client_options.setdefault("timeout", FAST_TIMEOUT)
        clients = HttpxPanelClients(**client_options)
        panel = panel_for(emulator, url=url, password=password, api_key=api_key, extra=extra)
        session = clients.open(panel)
        stack.callback(session.close)
        return session

    return _open


class Decoding:
    """How whole listings are decoded in a test, and the replies read as decoded."""

    def __init__(self, as_decoded: bool) -> None:
        self.as_decoded = as_decoded
        self.replies: list[object] = []


@pytest.fixture(params=["whole", "as decoded"])
def decoding(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Decoding:
    """Whole listings decoded whole, or as they arrive (as large ones are), whatever their size."""
    seen = Decoding(request.param == "as decoded")

    def decode(reply: Any) -> object:
        if reply.arrived:
            seen.replies.append(reply)
        return decode_json(reply)

    monkeypatch.setattr(reader, "decode_json", decode)
    monkeypatch.setattr(reader, "READ_AS_DECODED_BYTES", 0 if seen.as_decoded else 1 << 62)
    return seen


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    """Each panel variant in turn: eylandoo, marzban, marzneshin, xui-v2, xui-v3."""
    name: str = request.param
    return name


@pytest.fixture(params=PAGED)
def paged(request: pytest.FixtureRequest) -> str:
    """Each panel whose listing pages: marzban (offset/limit), marzneshin (page/size)."""
    name: str = request.param
    return name


class TestListing:
    """A listing replaces the single reads: same results, far fewer requests."""

    def test_listing_gives_what_single_reads_give(
        self,
        variant: str,
        start: StartVariant,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """2,000 users read from the listing equal their single reads, with no single GET."""
        users = seeded(2_000)
        panel = start(variant, users=users)
        session = open_session(panel)
        results = session.fetch_many(names_of(users))
        counts = panel.counts
        logins, pages = listing_requests(variant, 2_000)
        pages += probes(variant)
        assert (counts.logins, counts.list_pages, counts.user_gets) == (logins, pages, 0)
        # 3x-ui fetches a CSRF token; PasarGuard asks once for the owning admins' state.
        extra = 1 if variant.startswith("xui") or variant == "pasarguard" else 0
        assert counts.requests == logins + pages + extra
        assert list(results) == names_of(users)
        assert wrong(panel, results) == {}
        for name in names_of(users)[::97]:
            single, listed = reading(session.fetch_usage(name)), reading(results[name])
            assert (listed.bytes, listed.upload_bytes, listed.download_bytes) == (
                single.bytes,
                single.upload_bytes,
                single.download_bytes,
            )

    def test_one_info_line_per_listing_and_no_per_user_lines(
        self,
        variant: str,
        start: StartVariant,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """The listing logs one info line with its size; list items log nothing each."""
        users = seeded(2_000)
        panel = start(variant, users=users)
        open_session(panel).fetch_many(names_of(users))
        pages = listing_requests(variant, 2_000)[1]
        noun = "page" if pages == 1 else "pages"
        message = f"{LABELS[variant]} users listed: 2000 users in {pages} {noun}"
        [record] = records_with(logs.records, message)
        assert record.levelno == logging.INFO
        context = context_of(record)
        assert (context["panel_id"], context["users"], context["pages"]) == (1, 2_000, pages)
        assert isinstance(context["seconds"], float)
        per_user = [r for r in logs.records if "usage" in r.getMessage().lower()]
        assert per_user == []

    def test_page_size_comes_from_the_panel_extra(
        self, paged: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """`extra.sync_page_size` sets the page size; Marzneshin clamps it to 100."""
        users = seeded(1_000)
        panel = start(paged, users=users)
        for asked, marzban_pages, marzneshin_pages in ((300, 4, 10), (40, 25, 25)):
            panel.reset_counts()
            # Forced: by cost, pages of 40 lose to batches of 50.
            extra = {"sync_page_size": asked, "usage_sync_read_strategy": "listing"}
            session = open_session(panel, extra=extra)
            assert wrong(panel, session.fetch_many(names_of(users))) == {}
            expected = marzban_pages if paged == "marzban" else marzneshin_pages
            assert panel.counts.list_pages == expected

    def test_only_requested_users_are_returned(
        self, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """Listed users nobody asked for are ignored; duplicates and "" are handled."""
        panel = start(variant, users=seeded(300))
        results = open_session(panel).fetch_many(["u00007", "u00200", "u00007", ""])
        assert list(results) == ["u00007", "u00200", ""]
        assert results[""] == HardFailure("the config has no panel username")
        assert wrong(panel, {n: r for n, r in results.items() if n}) == {}

    @pytest.mark.parametrize("shape", EYLANDOO_LIST_SHAPES)
    def test_every_eylandoo_list_shape_parses(
        self,
        shape: EylandooListShape,
        start: StartVariant,
        open_session: OpenSession,
        decoding: Decoding,
    ) -> None:
        """`users`, `data.users`, `main_admin`, `main_admin_users` and `sub_admins` all read."""
        users = seeded(400)
        panel = start("eylandoo", users=users, list_shape=shape)
        results = open_session(panel).fetch_many(names_of(users))
        assert wrong(panel, results) == {}
        assert panel.counts.user_gets == 0
        if shape == "data.users":
            assert {reading(r).path for r in results.values()} == {"data.data_used"}

    def test_missing_credentials_send_nothing(
        self, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """Without a password or API key every user fails at once, without a request."""
        panel = start(variant, users=seeded(5))
        results = open_session(panel, password=None, api_key=None).fetch_many(["u00001", "x"])
        assert {type(r) for r in results.values()} == {HardFailure}
        assert panel.counts.requests == 0

    def test_unsupported_panel_type_fails_every_name(self) -> None:
        """A session that cannot exist answers `fetch_many` with its one failure."""
        panel = Panel(id=9, name="h", url="http://127.0.0.1:9", panel_type="v2ray")
        session = HttpxPanelClients().open(panel)
        expected = HardFailure("unsupported panel type 'v2ray'")
        assert session.fetch_many(["a", "b"]) == {"a": expected, "b": expected}
        session.close()


class TestFallbackToSingleReads:
    """What the listing does not give is read one by one, and only that."""

    def test_users_missing_from_the_listing_are_read_singly(
        self,
        variant: str,
        start: StartVariant,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """Unlisted users (and an unknown one) get single reads; nobody else does."""
        users = seeded(2_000)
        panel = start(variant, users=users)
        hidden = ["u00003", "u00999", "u01998"]
        panel.omit_from_listing(hidden)
        results = open_session(panel).fetch_many([*names_of(users), "ghost"])
        assert sorted(set(panel.seen_usernames)) == sorted([*hidden, "ghost"])
        assert panel.counts.user_gets == 4
        assert isinstance(results.pop("ghost"), HardFailure)
        assert wrong(panel, results) == {}
        [record] = records_with(
            logs.records,
            f"{LABELS[variant]}: 4 users read one by one (4 not listed, 0 without usage "
            "in the listing)",
        )
        assert context_of(record)["not_listed"] == 4

    def test_eylandoo_items_without_usage_are_read_singly(
        self, start: StartVariant, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """List items with no usage field (path `none`) are replaced by single reads."""
        users = seeded(500)
        panel = start("eylandoo", users=users)
        bare = ["u00010", "u00020", "u00499"]
        for name in bare:
            panel.set_list_item(name, {"username": name, "is_active": True})
        results = open_session(panel).fetch_many(names_of(users))
        assert sorted(panel.seen_usernames) == bare
        assert wrong(panel, results) == {}
        assert {reading(results[n]).path for n in bare} == {"total_traffic_bytes"}
        per_user = [r for r in logs.records if r.getMessage().startswith("Eylandoo usage")]
        assert sorted(str(context_of(r)["username"]) for r in per_user) == bare

    @pytest.mark.parametrize("variant", ["marzban", "marzneshin", "xui-v2", "xui-v3"])
    def test_unreadable_list_items_are_read_singly(
        self, variant: str, start: StartVariant, open_session: OpenSession, decoding: Decoding
    ) -> None:
        """Items whose usage is null or not a number are read singly, like missing ones."""
        users = seeded(300)
        panel = start(variant, users=users)
        key = "email" if variant.startswith("xui") else "username"
        field = "up" if variant.startswith("xui") else "used_traffic"
        panel.set_list_item("u00042", {key: "u00042", field: None, "down": 1})
        panel.set_list_item("u00043", {key: "u00043", field: "lots", "down": 1})
        panel.set_list_item("u00044", ["not", "an", "object"])
        results = open_session(panel).fetch_many(names_of(users))
        assert sorted(panel.seen_usernames) == ["u00042", "u00043", "u00044"]
        assert wrong(panel, results) == {}

    def test_a_page_failing_midway_keeps_the_other_pages(
        self,
        paged: str,
        start: StartVariant,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """Page 3 answering 500 costs single reads for its users only, with a warning."""
        users = seeded(1_000)
        panel = start(paged, users=users)
        panel.set_list_fault(3, Fault.http_status(500))
        session = open_session(panel, extra={"sync_page_size": 100})
        results = session.fetch_many(names_of(users))
        assert wrong(panel, results) == {}
        assert sorted(panel.seen_usernames) == names_of(users)[200:300]
        [record] = records_with(
            logs.records,
            f"{LABELS[paged]} users listing failed; reading the users it did not give one by one",
        )
        assert record.levelno == logging.WARNING
        assert context_of(record)["reason"] == "page 3: HTTP 500: Internal Server Error"
        assert context_of(record)["pages"] == 9

    @pytest.mark.parametrize(
        "fault",
        [
            Fault.http_status(503),
            Fault.malformed("<html>502 Bad Gateway"),
            Fault.reply({"unexpected": "shape"}),
            Fault.reply({"success": False, "message": "database is locked", "msg": "locked"}),
        ],
        ids=["http-503", "not-json", "unexpected-shape", "success-false"],
    )
    def test_a_failed_listing_falls_back_for_everyone(
        self, fault: Fault, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """A listing that fails from its first page leaves every user to a single read."""
        users = seeded(60)
        panel = start(variant, users=users)
        panel.set_list_fault(1, fault)
        results = open_session(panel).fetch_many(names_of(users))
        assert wrong(panel, results) == {}
        assert sorted(set(panel.seen_usernames)) == names_of(users)

    def test_a_listing_bigger_than_the_cap_falls_back(
        self, start: StartVariant, open_session: OpenSession
    ) -> None:
        """A listing reply above `max_listing_bytes` is not parsed; users are read singly."""
        users = seeded(50)
        panel = start("eylandoo", users=users)
        results = open_session(panel, max_listing_bytes=1_000).fetch_many(names_of(users))
        assert wrong(panel, results) == {}
        assert panel.counts.user_gets == 50


class TestChangingListings:
    """Paged listings whose users change between pages still give everyone a result."""

    @pytest.mark.parametrize("concurrency", [1, 4])
    def test_users_added_and_removed_between_pages(
        self, concurrency: int, paged: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """Users the shifted listing skipped, or listed twice with two counters, are read singly."""
        users = seeded(1_000)
        panel = start(paged, users=users)
        old_099 = counter(panel, "u00099")
        lock = threading.Lock()
        done: set[int] = set()

        def change(page: int) -> None:
            with lock:
                if page in done:
                    return
                done.add(page)
            if page == 2:  # everyone moves one place down: u00099 is listed twice
                panel.users.add("a-new", total=1)
                panel.users.add_traffic("u00099", download=5_000)
            elif page == 3:  # everyone moves one place up: u00199 is skipped
                panel.users.remove("u00010")
                panel.users.remove("u00950")

        panel.set_list_hook(change)
        session = open_session(
            panel, extra={"sync_page_size": 100, "sync_concurrency": concurrency}
        )
        results = session.fetch_many(names_of(users))
        assert set(results) == set(names_of(users))
        assert reading(results.pop("u00010")).bytes == users[10].used  # listed, then deleted
        late = results.pop("u00950")
        if concurrency == 1:
            # Listed twice with two counters: neither page is trusted; the single read is.
            assert reading(results.pop("u00099")).bytes == old_099 + 5_000
            assert isinstance(late, HardFailure)  # deleted before its page was listed
            assert sorted(panel.seen_usernames) == ["u00099", "u00199", "u00950"]
        else:
            # Pages arrive in any order: its page may have been listed before the deletion,
            # and u00099 listed once (before it moved) or twice (then read singly).
            assert isinstance(late, HardFailure) or late.bytes == users[950].used
            assert reading(results.pop("u00099")).bytes in (old_099, old_099 + 5_000)
        assert wrong(panel, results) == {}


class TestDeadAndSlowPanels:
    """A dead panel fails fast and a slow one costs at most its time budget."""

    def test_dead_panel_fails_the_whole_batch_fast(
        self, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """A closed port fails every user at once: no per-user retries."""
        panel = start(variant, users=seeded(3))
        session = open_session(panel, url=closed_port_url() + panel.base_path)
        names = [f"u{i:05d}" for i in range(2_000)]
        began = time.monotonic()
        results = session.fetch_many(names)
        assert time.monotonic() - began < 1.0
        reasons = {r.reason for r in results.values() if isinstance(r, HardFailure)}
        assert len(reasons) == 1
        assert "could not reach the panel (ConnectError)" in reasons.pop()
        assert len(results) == 2_000

    def test_panel_dying_after_login_fails_after_one_probe(
        self, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """When the listing and the first single read both fail in transit, the rest fail too."""
        panel = start(variant, users=seeded(3))
        session = open_session(panel)
        reading(session.fetch_usage("u00001"))  # logged in, connections pooled
        panel.close()
        began = time.monotonic()
        results = session.fetch_many([f"u{i:05d}" for i in range(2_000)])
        assert time.monotonic() - began < 1.0
        reasons = {r.reason for r in results.values() if isinstance(r, HardFailure)}
        assert reasons == {"could not reach the panel (ConnectError)"}

    def test_listing_and_first_read_failing_in_transit_stop_the_batch(
        self, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """Connections dropped by the listing and one single read: no more single reads."""
        users = seeded(500)
        panel = start(variant, users=users)
        panel.set_list_fault(1, Fault.disconnected())
        for name in names_of(users):
            panel.set_fault(name, Fault.disconnected())
        results = open_session(panel).fetch_many(names_of(users))
        assert (panel.counts.list_pages, panel.counts.user_gets) == (1, 1)
        assert set(results.values()) == {
            HardFailure("could not reach the panel (RemoteProtocolError)")
        }

    def test_listing_failing_in_transit_alone_does_not_stop_the_batch(
        self, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """A dropped listing whose first single read works goes on reading everyone."""
        users = seeded(100)
        panel = start(variant, users=users)
        panel.set_list_fault(1, Fault.disconnected())
        results = open_session(panel).fetch_many(names_of(users))
        assert wrong(panel, results) == {}
        assert panel.counts.user_gets == 100

    def test_hanging_panel_costs_its_budget(
        self, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """A panel that never answers gives every user the budget failure, within the budget."""
        panel = start(variant, users=seeded(3), latency_s=30.0)
        session = open_session(panel, panel_budget_s=0.8)
        began = time.monotonic()
        results = session.fetch_many([f"u{i:05d}" for i in range(500)])
        assert time.monotonic() - began < 1.3
        assert set(results.values()) == {OUT_OF_TIME}

    @pytest.mark.parametrize("name", ["eylandoo", "marzban"])
    def test_slow_single_reads_stop_at_the_budget(
        self,
        name: str,
        start: StartVariant,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """Once the budget is spent no read starts; the users left get the budget failure."""
        users = seeded(200)
        panel = start(name, users=users, latency_s=0.1)
        panel.set_list_fault(1, Fault.http_status(500))
        session = open_session(panel, panel_budget_s=1.0)
        began = time.monotonic()
        results = session.fetch_many(names_of(users))
        assert time.monotonic() - began < 1.4
        read = {n: r for n, r in results.items() if isinstance(r, CounterReading)}
        unread = [n for n, r in results.items() if r == OUT_OF_TIME]
        assert len(read) + len(unread) == 200
        assert 8 <= len(read) <= 40
        assert wrong(panel, read) == {}
        assert panel.counts.user_gets <= len(read) + 4
        message = f"{LABELS[name]} time budget ran out: {len(unread)} users not read"
        [record] = records_with(logs.records, message)
        assert context_of(record) == {"panel_id": 1, "users": len(unread), "budget_s": 1.0}


class TestConcurrency:
    """Pages and single reads run concurrently, never more than the panel's limit."""

    @pytest.mark.parametrize(
        ("name", "limit", "singles"),
        [("marzneshin", 3, False), ("marzban", None, False), ("eylandoo", 5, True)],
        ids=["pages-3", "marzban-one-page-at-a-time", "singles-5"],
    )
    def test_requests_in_flight_never_exceed_the_limit(
        self,
        name: str,
        limit: int | None,
        singles: bool,
        start: StartVariant,
        open_session: OpenSession,
    ) -> None:
        """No more than `sync_concurrency` requests at once; Marzban's pages one at a time."""
        users = seeded(600 if not singles else 40)
        panel = start(name, users=users, latency_s=0.03)
        if singles:
            panel.set_list_fault(1, Fault.http_status(500))
        extra: dict[str, object] = {"sync_page_size": 20}
        if limit is not None:
            extra["sync_concurrency"] = limit
        results = open_session(panel, extra=extra).fetch_many(names_of(users))
        assert wrong(panel, results) == {}
        assert panel.stats().max_in_flight == (limit or 1)

    def test_connection_pool_grows_to_the_concurrency(
        self, start: StartVariant, open_session: OpenSession
    ) -> None:
        """A limit above the pool's 10 connections is really reached (the pool is widened)."""
        users = seeded(64)
        panel = start("eylandoo", users=users, latency_s=0.05)
        panel.set_list_fault(1, Fault.http_status(500))
        session = open_session(panel, extra={"sync_concurrency": "16"})
        assert wrong(panel, session.fetch_many(names_of(users))) == {}
        assert panel.stats().max_in_flight == 16

    def test_expired_token_is_renewed_once_for_all_threads(
        self, paged: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """Tokens expiring mid-listing cost one re-login shared by every page that saw a 401."""
        users = seeded(2_000)
        panel = start(paged, users=users, latency_s=0.02)
        fired = threading.Event()

        def expire(page: int) -> None:
            if page == 3 and not fired.is_set():
                fired.set()
                panel.invalidate_sessions()

        panel.set_list_hook(expire)
        results = open_session(panel, extra={"sync_page_size": 100}).fetch_many(names_of(users))
        assert wrong(panel, results) == {}
        counts = panel.counts
        assert (counts.logins, counts.user_gets) == (2, 0)
        assert counts.rejected >= 1

    @pytest.mark.parametrize("name", ["marzban", "marzneshin", "xui-v2"])
    def test_a_storm_of_401s_costs_one_relogin(
        self, name: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """Users that keep answering 401 share one re-login per batch, then fail."""
        users = seeded(100)
        panel = start(name, users=users)
        stormy = names_of(users)[:20]
        panel.omit_from_listing(stormy)
        for user in stormy:
            panel.set_fault(user, Fault.http_status(401, body={"detail": "Not authenticated"}))
        results = open_session(panel).fetch_many(names_of(users))
        assert panel.counts.logins == 2
        assert {type(results[n]) for n in stormy} == {HardFailure}
        assert wrong(panel, {n: r for n, r in results.items() if n not in stormy}) == {}

    @pytest.mark.parametrize("name", ["marzban", "xui-v3"])
    def test_a_failed_relogin_is_not_retried_per_user(
        self, name: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """A re-login answered 503 fails the users left, without one login attempt each."""
        users = seeded(200)
        panel = start(name, users=users)
        panel.set_list_fault(1, Fault.http_status(401))
        panel.set_list_hook(lambda page: panel.set_login_fault(Fault.http_status(503)))
        results = open_session(panel).fetch_many(names_of(users))
        assert (panel.counts.logins, panel.counts.user_gets) == (2, 0)
        reasons = {r.reason for r in results.values() if isinstance(r, HardFailure)}
        assert len(reasons) == 1
        assert reasons.pop().startswith("login failed: HTTP 503")

    def test_many_threads_share_one_login(
        self, variant: str, start: StartVariant, open_session: OpenSession
    ) -> None:
        """`fetch_usage` from 16 threads at once logs in exactly once."""
        users = seeded(16)
        panel = start(variant, users=users, latency_s=0.05)
        session = open_session(panel)
        barrier = threading.Barrier(16)
        results: dict[str, UsageResult] = {}

        def read(name: str) -> None:
            barrier.wait()
            results[name] = session.fetch_usage(name)

        threads = [threading.Thread(target=read, args=(n,)) for n in names_of(users)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong(panel, results) == {}
        assert panel.counts.logins == (0 if variant == "eylandoo" else 1)


class TestNoCredentialInLogs:
    """Bulk reads never put a password, API key or token in a log line or a reason."""

    def test_bulk_failure_modes_keep_credentials_out(
        self,
        variant: str,
        start: StartVariant,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """Listings echoing every credential, failing, refused, dead or slow leak nothing."""
        users = seeded(30)
        names = names_of(users)
        panel = start(variant, users=users)
        reasons: list[str] = []
        session = open_session(panel)
        reasons += map(str, session.fetch_many(names).values())
        key = [API_KEY] if variant == "eylandoo" else []  # only Eylandoo's row holds a key
        held = [PASSWORD, *key, *panel.issued_tokens()]
        echo = {"detail": f"rejected {' '.join(held)}", "access_token": held[-1]}
        for fault in (
            Fault.http_status(500, body=echo),
            Fault.malformed(f"<html>{' | '.join(held)}</html>"),
            Fault.reply({"success": False, "message": held[-1], "msg": held[-1]}),
            Fault.reply({"users": held, "items": held, "total": "x"}),
        ):
            panel.set_list_fault(1, fault)
            reasons += map(str, session.fetch_many(names[:5]).values())
        panel.invalidate_sessions()
        reasons += map(str, session.fetch_many(names[:5]).values())
        wrong_session = open_session(panel, password=WRONG_PASSWORD, api_key=WRONG_API_KEY)
        reasons += map(str, wrong_session.fetch_many(names[:5]).values())
        slow = open_session(panel, panel_budget_s=0.3)
        panel.latency_s = 1.0
        reasons += map(str, slow.fetch_many(names[:5]).values())
        dead = open_session(panel, url=closed_port_url() + panel.base_path)
        reasons += map(str, dead.fetch_many(names[:5]).values())

        secrets = {PASSWORD, API_KEY, WRONG_PASSWORD, WRONG_API_KEY, *panel.issued_tokens()}
        assert len(logs.records) > 10
        assert leaks(logs.records, [*secrets, "SECRET"]) == []
        assert [r for r in reasons if any(s in r for s in [*secrets, "SECRET"])] == []


class TestEmulatorListings:
    """The emulators page, sort and misbehave as the tests above need."""

    def test_marzban_sorts_by_username_and_refuses_unknown_sorts(self, start: StartVariant) -> None:
        """`sort=username` orders the pages, `-username` reverses, a bad key is a 400."""
        panel = start("marzban", users={"carol": 3, "alice": 1, "bob": 2})
        with httpx.Client(base_url=panel.url) as raw:
            token = raw.post(
                "/api/admin/token", data={"username": ADMIN, "password": PASSWORD}
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}

            def page(query: str) -> list[str]:
                reply = raw.get(f"/api/users?{query}", headers=auth).json()
                return [user["username"] for user in reply["users"]]

            assert page("offset=0&limit=2&sort=username") == ["alice", "bob"]
            assert page("offset=2&limit=2&sort=username") == ["carol"]
            assert page("sort=-username") == ["carol", "bob", "alice"]
            assert page("") == ["carol", "alice", "bob"]
            bad = raw.get("/api/users?sort=colour", headers=auth)
        assert (bad.status_code, bad.json()) == (
            400,
            {"detail": '"colour" is not a valid sort option'},
        )

    def test_stats_report_requests_in_flight_and_build_time(self, start: StartVariant) -> None:
        """`stats()` counts requests served, the most in flight, busy and build seconds."""
        panel = start("eylandoo", users=seeded(1_000), latency_s=0.1)
        headers = {"X-API-KEY": API_KEY}
        with httpx.Client(base_url=panel.url, headers=headers) as raw:
            threads = [
                threading.Thread(target=raw.get, args=("/api/v1/users/list_all",)) for _ in range(3)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        deadline = time.monotonic() + 2.0  # the server counts a reply just after sending it
        while panel.stats().served < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = panel.stats()
        assert (stats.served, stats.in_flight, stats.max_in_flight) == (3, 0, 3)
        assert stats.busy_s >= 0.3
        assert 0 < stats.build_s < stats.busy_s - 0.25  # the latency is not building time
        assert stats.bytes_sent > 3 * 1_000 * 200


class TestWholeListingsReadAsDecoded:
    """Eylandoo and 3x-ui replies read user by user as they are decoded, as the large ones are."""

    @pytest.mark.parametrize("variant", ["eylandoo", "xui-v2", "xui-v3"])
    def test_the_listing_gives_what_the_panel_holds(
        self,
        variant: str,
        start: StartVariant,
        open_session: OpenSession,
        decoding: Decoding,
    ) -> None:
        """2,000 users come from the one listing reply, each as the panel holds it."""
        users = seeded(2_000)
        panel = start(variant, users=users)
        results = open_session(panel).fetch_many(names_of(users))
        assert list(results) == names_of(users)
        assert wrong(panel, results) == {}
        assert (panel.counts.list_pages, panel.counts.user_gets) == (1, 0)
        assert len(decoding.replies) == (1 if decoding.as_decoded else 0)

    def test_a_malformed_reply_falls_back_for_everyone(
        self, start: StartVariant, open_session: OpenSession, decoding: Decoding
    ) -> None:
        """A listing cut short is not JSON either way: every user is read singly."""
        users = seeded(50)
        panel = start("xui-v3", users=users)
        cut_short = '{"success":true,"msg":"","obj":[{"clientStats":[{'
        panel.set_list_fault(1, Fault.malformed(cut_short))
        results = open_session(panel).fetch_many(names_of(users))
        assert wrong(panel, results) == {}
        assert panel.counts.user_gets == 50
