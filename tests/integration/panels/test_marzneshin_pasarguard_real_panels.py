"""The Marzneshin and PasarGuard dialects against real, unmodified panels, when configured.

Marzneshin: `USAGE_SYNC_TEST_MARZNESHIN_URL`, `_USERNAME`, `_PASSWORD` (a sudo admin) and `_DB`
(the panel's database, an SQLAlchemy URL). PasarGuard: `USAGE_SYNC_TEST_PASARGUARD_URL`,
`_USERNAME`, `_PASSWORD` (an admin that may create users), `_DB` and `_GROUP` (a group id for
new users), and optionally `_KEY` (an API key of that admin). Counters are written into the
panel's database, as its usage job writes them. docs/panels.md says how such panels were
started on loopback.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import httpx
import pytest
from gateway_support import failure, reading
from sqlalchemy import create_engine, text

from usage_adapters.panels import HttpxPanelClients
from usage_core.model import Panel, Secret
from usage_core.ports import PanelSession

pytestmark = [pytest.mark.real_panels, pytest.mark.timeout(120)]

# Byte counts past 2^32 and 2^40, and a tiny one.
COUNTERS = (5_972_593_704, 2**40 + 12_345, 1)
# What each user used before its last reset (Marzneshin keeps it in `lifetime_used_traffic`).
EARLIER = 1_000


class RealPanel(NamedTuple):
    """Where a real panel is and how to reach it."""

    url: str
    username: str
    password: str
    db: str
    group: str
    key: str


def configured(kind: str) -> RealPanel | None:
    """The panel named by `USAGE_SYNC_TEST_<KIND>_*`, or None when it is not configured."""
    prefix = f"USAGE_SYNC_TEST_{kind.upper()}_"
    values = RealPanel(
        *(os.environ.get(prefix + f, "") for f in ("URL", "USERNAME", "PASSWORD", "DB")),
        group=os.environ.get(prefix + "GROUP", ""),
        key=os.environ.get(prefix + "KEY", ""),
    )
    needed = values[:4] + ((values.group,) if kind == "pasarguard" else ())
    return values if all(needed) else None


MARZNESHIN = configured("marzneshin")
PASARGUARD = configured("pasarguard")


@contextmanager
def session_on(kind: str, real: RealPanel, *, key: str = "") -> Iterator[PanelSession]:
    """A gateway session as a sync opens one, by password or, given `key`, by API key."""
    extra = {"usage_sync_panel_type": kind} if kind == "pasarguard" else {}
    panel = Panel(
        id=1,
        name=f"real {kind}",
        url=real.url,
        panel_type="other" if kind == "pasarguard" else kind,
        username=None if key else real.username,
        password=None if key else Secret(real.password),
        api_token=Secret(key) if key else None,
        extra=extra,
    )
    session = HttpxPanelClients(timeout=60).open(panel)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def marzneshin_users() -> Iterator[list[str]]:
    """Three users made through Marzneshin's API (one name inside another); deleted after."""
    assert MARZNESHIN is not None
    yield from _made_users("marzneshin", MARZNESHIN)


@pytest.fixture
def pasarguard_users() -> Iterator[list[str]]:
    """Three users made through PasarGuard's API (one name inside another); deleted after."""
    assert PASARGUARD is not None
    yield from _made_users("pasarguard", PASARGUARD)


def _made_users(kind: str, real: RealPanel) -> Iterator[list[str]]:
    token_route = "/api/admins/token" if kind == "marzneshin" else "/api/admin/token"
    api = httpx.Client(base_url=real.url, timeout=60)
    form = {"username": real.username, "password": real.password}
    api.headers["Authorization"] = (
        "Bearer " + api.post(token_route, data=form).json()["access_token"]
    )
    engine = create_engine(real.db)
    stem = f"us_{uuid.uuid4().hex[:8]}"
    # `stem_a` is inside `stem_a2`: a one-value Marzneshin filter would find both.
    names = [f"{stem}_a", f"{stem}_a2", f"{stem}_b"]
    made: list[str] = []
    try:
        for name, counter in zip(names, COUNTERS, strict=True):
            if kind == "marzneshin":
                body: dict[str, object] = {
                    "username": name,
                    "expire_strategy": "never",
                    "service_ids": [],
                }
                created = api.post("/api/users", json=body)
                sql = "UPDATE users SET used_traffic = :c, lifetime_used_traffic = :l"
            else:
                body = {"username": name, "proxy_settings": {}, "group_ids": [int(real.group)]}
                created = api.post("/api/user", json=body)
                sql = "UPDATE users SET used_traffic = :c"
            assert created.status_code in (200, 201), created.text
            made.append(name)
            with engine.begin() as conn:
                conn.execute(
                    text(sql + " WHERE username = :u"),
                    {"c": counter, "l": counter + EARLIER, "u": name},
                )
        yield made
    finally:
        for name in made:
            api.delete(f"/api/users/{name}" if kind == "marzneshin" else f"/api/user/{name}")
        api.close()
        engine.dispose()


def _check_reads(session: PanelSession, users: list[str], *, lifetimes: bool) -> None:
    for name, counter in zip(users, COUNTERS, strict=True):
        single = reading(session.fetch_usage(name))
        assert single.bytes == counter
        if lifetimes:
            assert single.lifetime_bytes == counter + EARLIER
    ghost = f"{users[0]}_none"
    results = session.fetch_many([*users, ghost])
    assert [reading(results[name]).bytes for name in users] == list(COUNTERS)
    assert failure(results[ghost]).reason == "HTTP 404: User not found"
    # A one-name batch (Marzneshin: the name sent twice, one value being a substring match).
    assert reading(session.fetch_many([users[0]])[users[0]]).bytes == COUNTERS[0]


def _check_set_enabled(session: PanelSession, name: str) -> None:
    details = [session.set_enabled(name, enabled).detail for enabled in (False, False, True)]
    assert details == ["disabled", "already disabled", "enabled"]
    assert reading(session.fetch_usage(name)).bytes == COUNTERS[0]


class TestRealMarzneshin:
    """Counters, lifetimes, exact batches and set-state on a real Marzneshin."""

    @pytest.fixture(autouse=True)
    def configured(self) -> None:
        """Asked for without a panel to run against is a failure, not a skip."""
        if MARZNESHIN is None:
            pytest.fail("set USAGE_SYNC_TEST_MARZNESHIN_URL, _USERNAME, _PASSWORD and _DB")

    def test_reads(self, marzneshin_users: list[str]) -> None:
        """Single reads, batches (one name too) and the 404 carry the stored counters."""
        assert MARZNESHIN is not None
        with session_on("marzneshin", MARZNESHIN) as session:
            _check_reads(session, marzneshin_users, lifetimes=True)

    def test_set_enabled(self, marzneshin_users: list[str]) -> None:
        """Disable, disable again (the panel's 409), enable; the counter is untouched."""
        assert MARZNESHIN is not None
        with session_on("marzneshin", MARZNESHIN) as session:
            _check_set_enabled(session, marzneshin_users[0])


class TestRealPasarGuard:
    """Counters, owners, exact batches, API keys and set-state on a real PasarGuard."""

    @pytest.fixture(autouse=True)
    def configured(self) -> None:
        """Asked for without a panel to run against is a failure, not a skip."""
        if PASARGUARD is None:
            pytest.fail("set USAGE_SYNC_TEST_PASARGUARD_URL, _USERNAME, _PASSWORD, _DB and _GROUP")

    def test_reads(self, pasarguard_users: list[str]) -> None:
        """Single reads, batches and the 404 carry the counters and the creating admin."""
        assert PASARGUARD is not None
        with session_on("pasarguard", PASARGUARD) as session:
            _check_reads(session, pasarguard_users, lifetimes=False)
            owner = reading(session.fetch_usage(pasarguard_users[0])).owner
            assert owner == PASARGUARD.username

    def test_api_key_reads_the_same(self, pasarguard_users: list[str]) -> None:
        """With the admin's API key the same counters come back, and a wrong key is a 401."""
        assert PASARGUARD is not None
        if not PASARGUARD.key:
            pytest.skip("no USAGE_SYNC_TEST_PASARGUARD_KEY")
        with (
            session_on("pasarguard", PASARGUARD, key=PASARGUARD.key) as session,
            session_on("pasarguard", PASARGUARD, key="pg_key_wrong") as wrong,
        ):
            results = session.fetch_many(pasarguard_users)
            assert [reading(results[n]).bytes for n in pasarguard_users] == list(COUNTERS)
            refused = failure(wrong.fetch_usage(pasarguard_users[0]))
            assert refused.reason == "HTTP 401: Could not validate credentials"

    def test_set_enabled(self, pasarguard_users: list[str]) -> None:
        """Disable, disable again (read, no write), enable; the counter is untouched."""
        assert PASARGUARD is not None
        with session_on("pasarguard", PASARGUARD) as session:
            _check_set_enabled(session, pasarguard_users[0])
