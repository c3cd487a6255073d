"""What every panel gateway shares: transport failures, encoding, no credential in logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
from gateway_support import (
    FAST_TIMEOUT,
    SLOW_PANEL_TIMEOUT,
    OpenSession,
    StartEmulator,
    failure,
    reading,
)
from panel_support import (
    API_KEY,
    PASSWORD,
    VARIANTS,
    WRONG_API_KEY,
    WRONG_PASSWORD,
    closed_port_url,
    leaks,
)

from usage_adapters.panels import HttpxPanelClients
from usage_core.model import Panel, Secret
from usage_core.readings import HardFailure
from usage_sandbox.emulator import (
    Fault,
    PanelEmulator,
)

pytestmark = pytest.mark.timeout(30)


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
        panel = Panel(id=9, name="h", url="http://127.0.0.1:9", panel_type="v2ray")
        session = clients.open(panel)
        assert failure(session.fetch_usage("alice")).reason == "unsupported panel type 'v2ray'"
        session.close()

    def test_unknown_type_named_in_extra(self, clients: HttpxPanelClients) -> None:
        """An unknown `extra.usage_sync_panel_type` fails its panel by name, sending nothing."""
        panel = Panel(
            id=9,
            name="h",
            url="http://127.0.0.1:9",
            panel_type="marzban",
            extra={"usage_sync_panel_type": "nosuch"},
        )
        session = clients.open(panel)
        reason = failure(session.fetch_usage("alice")).reason
        assert reason.startswith(
            "extra.usage_sync_panel_type names an unknown panel type 'nosuch' (known: "
        )
        session.close()

    def test_type_named_in_extra_chooses_the_client(
        self, variant: Callable[..., PanelEmulator], open_session: OpenSession
    ) -> None:
        """A row stored as `other` that names the emulator's type in extra reads through it."""
        panel = variant(users={"alice": 4_096})
        session = open_session(
            panel, panel_type="other", extra={"usage_sync_panel_type": panel.kind.upper()}
        )
        assert reading(session.fetch_usage("alice")).bytes == 4_096

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
            key = [API_KEY] if kind == "eylandoo" else []  # only Eylandoo's row holds a key
            held = [PASSWORD, *key, *panel.issued_tokens()]
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
