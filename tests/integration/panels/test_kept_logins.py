"""Logins kept across sessions against the emulators, over loopback, with a fake clock."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from gateway_support import FAST_TIMEOUT, StartEmulator, reading
from panel_support import PASSWORD, panel_for, rendered

from usage_adapters.login_stores import FileLoginStore, file_secret
from usage_adapters.panels import HttpxPanelClients
from usage_adapters.panels.kept_logins import LoginKeeper, LoginStore, MemoryLoginStore
from usage_core.model import Panel
from usage_sandbox.emulator import PanelEmulator, PanelKind

DAY_S = 24 * 3600


class FakeClock:
    """Wall-clock seconds that move only when told."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["marzban", "marzneshin"])
def bearer_kind(request: pytest.FixtureRequest) -> PanelKind:
    """Each panel type that buys a bearer token with a password."""
    kind: PanelKind = request.param
    return kind


def keeper(store: LoginStore, clock: FakeClock) -> LoginKeeper:
    """A keeper over `store` with a fixed key and the fake clock."""
    return LoginKeeper(store, lambda: b"k" * 32, clock=clock)


def sync_once(clients: HttpxPanelClients, panel: Panel, names: list[str]) -> None:
    """One run's conversation with the panel: a session, a batch read, closed."""
    session = clients.open(panel)
    try:
        results = session.fetch_many(names)
    finally:
        session.close()
    for name in names:
        reading(results[name])


def logins_over(
    start: StartEmulator, kind: PanelKind, lifetime_s: float | None, minutes: int
) -> int:
    """Logins a panel sees from one run a minute for `minutes` minutes, the login kept."""
    clock = FakeClock()
    emulator = start(kind, users={"alice": 1}, token_lifetime_s=lifetime_s, clock=clock)
    clients = HttpxPanelClients(timeout=FAST_TIMEOUT, logins=keeper(MemoryLoginStore(clock), clock))
    panel = panel_for(emulator)
    for _ in range(minutes):
        sync_once(clients, panel, ["alice"])
        clock.now += 60
    assert emulator.counts.rejected == 0
    return emulator.counts.logins


class TestLoginsPerDay:
    """One run a minute logs in once per token lifetime, not once per run."""

    def test_marzban_logs_in_once_a_day(self, start: StartEmulator) -> None:
        """Three days at one run a minute (4,320 runs) on 24 h tokens: 4 logins, not 4,320."""
        logins = logins_over(start, "marzban", DAY_S, 3 * 1440)
        print(f"marzban, 24 h tokens, 1 run/min for 3 days: {logins} logins")
        # At 0, then each time the token is within the 5 min margin of its end.
        assert logins == 4

    def test_short_tokens_are_renewed_before_they_expire(
        self, bearer_kind: PanelKind, start: StartEmulator
    ) -> None:
        """Tokens of 1 h, renewed 5 min early: one login every 55 runs, and no 401 ever."""
        logins = logins_over(start, bearer_kind, 3600, 550)
        assert logins == 10

    def test_tokens_without_expiry_are_kept(self, start: StartEmulator) -> None:
        """A panel whose tokens never expire is logged in to once in a day of runs."""
        assert logins_over(start, "marzban", None, 1440) == 1


class TestRenewal:
    """A kept token the panel refuses, or a changed password."""

    def test_a_refused_kept_token_costs_exactly_one_login(
        self, bearer_kind: PanelKind, start: StartEmulator
    ) -> None:
        """After a panel restart, the next run meets one 401, logs in once, and keeps that."""
        clock = FakeClock()
        emulator = start(bearer_kind, users={"alice": 1, "bob": 2}, clock=clock)
        clients = HttpxPanelClients(
            timeout=FAST_TIMEOUT, logins=keeper(MemoryLoginStore(clock), clock)
        )
        panel = panel_for(emulator)
        sync_once(clients, panel, ["alice", "bob"])
        emulator.invalidate_sessions()
        sync_once(clients, panel, ["alice", "bob"])
        sync_once(clients, panel, ["alice", "bob"])
        counts = emulator.counts
        assert (counts.logins, counts.rejected) == (2, 1)

    def test_a_token_expired_at_the_panel_costs_exactly_one_login(
        self, bearer_kind: PanelKind, start: StartEmulator
    ) -> None:
        """The panel's clock runs 10 min ahead: a kept token it finds expired, one re-login."""
        ours, panels = FakeClock(), FakeClock()
        emulator = start(bearer_kind, users={"alice": 1}, token_lifetime_s=3600, clock=panels)
        clients = HttpxPanelClients(
            timeout=FAST_TIMEOUT, logins=keeper(MemoryLoginStore(ours), ours)
        )
        panel = panel_for(emulator)
        sync_once(clients, panel, ["alice"])
        # A minute past the token's `exp` by the panel's clock, 10 min before it by ours.
        panels.now += 3600 + 60
        ours.now += 3600 - 600
        sync_once(clients, panel, ["alice"])
        sync_once(clients, panel, ["alice"])
        counts = emulator.counts
        assert (counts.logins, counts.rejected) == (2, 1)

    def test_a_refused_kept_token_is_renewed_for_one_user(
        self, bearer_kind: PanelKind, start: StartEmulator
    ) -> None:
        """A single read (sync-one) with a revoked kept token logs in again and answers."""
        clock = FakeClock()
        emulator = start(bearer_kind, users={"alice": 7}, clock=clock)
        clients = HttpxPanelClients(
            timeout=FAST_TIMEOUT, logins=keeper(MemoryLoginStore(clock), clock)
        )
        panel = panel_for(emulator)
        sync_once(clients, panel, ["alice"])
        emulator.invalidate_sessions()
        session = clients.open(panel)
        assert reading(session.fetch_usage("alice")).bytes == 7
        session.close()
        assert (emulator.counts.logins, emulator.counts.rejected) == (2, 1)

    def test_a_changed_password_is_not_served_the_old_token(
        self, bearer_kind: PanelKind, start: StartEmulator
    ) -> None:
        """With a new password the kept token is not even tried: one login, no 401."""
        clock = FakeClock()
        emulator = start(bearer_kind, users={"alice": 1}, clock=clock)
        store = MemoryLoginStore(clock)
        clients = HttpxPanelClients(timeout=FAST_TIMEOUT, logins=keeper(store, clock))
        sync_once(clients, panel_for(emulator), ["alice"])
        emulator.change_password("a-new-SECRET-password")
        emulator.reset_counts()
        sync_once(clients, panel_for(emulator, password="a-new-SECRET-password"), ["alice"])
        counts = emulator.counts
        assert (counts.logins, counts.rejected) == (1, 0)


class TestFileStore:
    """Logins kept in owner-only files."""

    def test_files_are_owner_only_and_hold_no_token(
        self, tmp_path: Path, start: StartEmulator, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The login and key files are 0600; neither they nor any log line hold the token."""
        caplog.set_level(logging.DEBUG)
        clock = FakeClock()
        emulator = start("marzban", users={"alice": 1}, clock=clock)
        store = FileLoginStore(tmp_path / "state" / "logins")
        logins = LoginKeeper(store, file_secret(tmp_path / "state" / "login-key"), clock=clock)
        clients = HttpxPanelClients(timeout=FAST_TIMEOUT, logins=logins)
        sync_once(clients, panel_for(emulator), ["alice"])
        sync_once(clients, panel_for(emulator), ["alice"])
        assert emulator.counts.logins == 1
        [token] = emulator.issued_tokens()
        files = [tmp_path / "state" / "login-key", tmp_path / "state" / "logins" / "panel-1"]
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert token.encode() not in path.read_bytes()
            assert PASSWORD.encode() not in path.read_bytes()
        assert stat.S_IMODE((tmp_path / "state" / "logins").stat().st_mode) == 0o700
        everything = "\n".join(rendered(record) for record in caplog.records)
        assert token not in everything
        assert token.split(".")[2] not in everything

    def test_a_new_key_file_means_a_new_login(self, tmp_path: Path, start: StartEmulator) -> None:
        """A login sealed with another key is not opened: the run logs in and replaces it."""
        clock = FakeClock()
        emulator = start("marzneshin", users={"alice": 1}, clock=clock)
        store = FileLoginStore(tmp_path / "logins")
        for key in (b"a" * 32, b"b" * 32, b"b" * 32):
            logins = LoginKeeper(store, lambda key=key: key, clock=clock)
            sync_once(
                HttpxPanelClients(timeout=FAST_TIMEOUT, logins=logins),
                panel_for(emulator),
                ["alice"],
            )
        assert (emulator.counts.logins, emulator.counts.rejected) == (2, 0)


def test_the_emulated_token_expires(start: StartEmulator) -> None:
    """The emulator's JWT is refused with Marzban's 401 once its `exp` has passed."""
    clock = FakeClock()
    emulator: PanelEmulator = start("marzban", users={"alice": 1}, token_lifetime_s=60, clock=clock)
    clients = HttpxPanelClients(timeout=FAST_TIMEOUT)
    session = clients.open(panel_for(emulator))
    assert reading(session.fetch_usage("alice")).bytes == 1
    clock.now += 61
    assert reading(session.fetch_usage("alice")).bytes == 1
    session.close()
    counts = emulator.counts
    assert (counts.logins, counts.rejected) == (2, 1)


@pytest.fixture(params=[2, 3])
def xui_version(request: pytest.FixtureRequest) -> int:
    """3x-ui v2 (no CSRF) and v3 (CSRF token kept with the cookie)."""
    version: int = request.param
    return version


def xui(start: StartEmulator, version: int, clock: FakeClock, **options: object) -> PanelEmulator:
    """A 3x-ui emulator on the fake clock, under a base path."""
    return start(
        "xui",
        users={"alice": 1, "bob": 2},
        xui_version=version,
        base_path="/base",
        clock=clock,
        **options,
    )


class TestXuiSessions:
    """3x-ui session cookies kept across runs."""

    def test_cookie_kept_until_max_age(self, xui_version: int, start: StartEmulator) -> None:
        """Six-hour sessions, a run a minute for a day: a login every 5 h 55 min, no refusal."""
        clock = FakeClock()
        emulator = xui(start, xui_version, clock)
        clients = HttpxPanelClients(
            timeout=FAST_TIMEOUT, logins=keeper(MemoryLoginStore(clock), clock)
        )
        panel = panel_for(emulator)
        for _ in range(1440):
            sync_once(clients, panel, ["alice", "bob"])
            clock.now += 60
        counts = emulator.counts
        print(f"xui v{xui_version}, 6 h sessions, 1 run/min for a day: {counts.logins} logins")
        assert (counts.logins, counts.rejected) == (5, 0)

    def test_writes_use_the_kept_csrf_token(self, start: StartEmulator) -> None:
        """v3: a write in a later run goes through with the kept session's CSRF token."""
        clock = FakeClock()
        emulator = xui(start, 3, clock)
        clients = HttpxPanelClients(
            timeout=FAST_TIMEOUT, logins=keeper(MemoryLoginStore(clock), clock)
        )
        panel = panel_for(emulator)
        sync_once(clients, panel, ["alice"])
        session = clients.open(panel)
        assert session.set_enabled("bob", False).ok
        session.close()
        assert not emulator.users.is_enabled("bob")
        assert (emulator.counts.logins, emulator.counts.rejected) == (1, 0)

    @pytest.mark.parametrize("login_again_200", [False, True])
    def test_a_lost_session_costs_one_login(
        self, xui_version: int, login_again_200: bool, start: StartEmulator
    ) -> None:
        """A restarted panel (401, or before 2.2.5 `success: false`): one login, then kept."""
        clock = FakeClock()
        emulator = xui(start, xui_version, clock, xui_login_again_200=login_again_200)
        clients = HttpxPanelClients(
            timeout=FAST_TIMEOUT, logins=keeper(MemoryLoginStore(clock), clock)
        )
        panel = panel_for(emulator)
        sync_once(clients, panel, ["alice", "bob"])
        emulator.invalidate_sessions()
        sync_once(clients, panel, ["alice", "bob"])
        session = clients.open(panel)
        assert reading(session.fetch_usage("bob")).bytes == 2
        session.close()
        assert (emulator.counts.logins, emulator.counts.rejected) == (2, 1)
