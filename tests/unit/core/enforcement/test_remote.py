"""The outbox worker: paced, retried with backoff, kept when it fails, cancelled when stale."""

from datetime import datetime

import attrs

from tests.fakes import FakePace, InMemoryEnforcement, InMemoryPanels, ScriptedPanelClients
from usage_core.enforcement.remote import RemoteOperations
from usage_core.enforcement.rules import EnforcedConfig, RemoteOp, ResellerState
from usage_core.model import Panel, ResellerConfig
from usage_core.readings import RemoteResult

PANELS = [Panel(1, "m", "http://m", "marzban"), Panel(2, "n", "http://n", "marzneshin")]


def queued(config_id: int, status: str, connects: bool, panel_id: int = 1) -> EnforcedConfig:
    """A config with a remote operation waiting in its outbox."""
    config = ResellerConfig(
        config_id, 7, status, "marzban", panel_id, f"u{config_id}", f"u{config_id}", 0, 0
    )
    op = RemoteOp(connects, "reseller_quota_exhausted", event_id=config_id, queued_at="t")
    return EnforcedConfig(config, datetime(2030, 1, 1), pending=op)


def worker(configs: list[EnforcedConfig], writes: dict[str, list[RemoteResult]] | None = None):
    """The worker over fakes; its store, clients and pace."""
    store = InMemoryEnforcement([ResellerState(7, "traffic", "suspended", 1, 2)], configs)
    store.events = [{} for _ in range(10)]
    clients = ScriptedPanelClients({}, writes or {})
    pace = FakePace()
    return RemoteOperations(store, InMemoryPanels(PANELS), clients, pace), store, clients, pace


def calls(clients: ScriptedPanelClients) -> list[tuple[str, bool]]:
    """Every set_enabled call, over every session."""
    return [write for _, session in clients.sessions for write in session.writes]


class TestRemoteOperations:
    """Every queued change reaches its panel once; failures wait for the next run."""

    def test_each_op_is_sent_and_leaves_the_outbox(self) -> None:
        """Disables and enables go out as set-state calls; done ones leave the outbox."""
        run, store, clients, _ = worker([queued(1, "disabled", False), queued(2, "active", True)])
        tally = run(rate=3)
        assert (tally.done, tally.failed, tally.cancelled) == (2, 0, 0)
        assert sorted(calls(clients)) == [("u1", False), ("u2", True)]
        assert store.pending_operations() == []
        assert store.events[0]["remote_success"] is True

    def test_rate_limit_spaces_requests_on_one_panel(self) -> None:
        """Three operations a second on one panel: the fourth starts a second after the first."""
        configs = [queued(i, "disabled", False) for i in range(1, 5)]
        run, _, _, pace = worker(configs)
        run = attrs.evolve(run, per_panel=1)  # one worker: the fake clock is not shared safely
        run(rate=3)
        assert abs(sum(pace.slept) - 1.0) < 1e-9

    def test_transient_failures_are_retried_with_backoff(self) -> None:
        """A 5xx then success: two attempts, waiting the backoff in between."""
        fail = RemoteResult(False, "HTTP 502", retry=True)
        run, store, _, pace = worker([queued(1, "disabled", False)], {"u1": [fail]})
        tally = run(rate=100)
        assert tally.done == 1
        assert store.events[0]["attempts"] == 2
        assert max(pace.slept) >= 1.0

    def test_a_final_failure_stays_queued_for_the_next_run(self) -> None:
        """Three failed tries leave the operation in the outbox with its error."""
        fail = RemoteResult(False, "HTTP 500", retry=True)
        run, store, _, _ = worker([queued(1, "disabled", False)], {"u1": [fail, fail, fail]})
        tally = run(rate=100)
        assert (tally.done, tally.failed) == (0, 1)
        [(_, op)] = store.pending_operations()
        assert (op.attempts, op.last_error) == (3, "HTTP 500")
        assert run(rate=100).done == 1  # the next run completes it
        assert store.pending_operations() == []

    def test_a_refusal_is_not_retried_in_the_run(self) -> None:
        """A failure that cannot pass by itself (a 404) is tried once per run."""
        refused = RemoteResult(False, "HTTP 404: User not found")
        run, store, clients, _ = worker([queued(1, "disabled", False)], {"u1": [refused]})
        run(rate=100)
        assert calls(clients) == [("u1", False)]
        assert len(store.pending_operations()) == 1

    def test_superseded_operations_are_cancelled_not_replayed(self) -> None:
        """A disable whose config is active again (a person, or a later transition) is dropped."""
        run, store, clients, _ = worker([queued(1, "active", False)])
        tally = run(rate=3)
        assert (tally.cancelled, tally.done) == (1, 0)
        assert calls(clients) == []
        assert store.events[0]["last_error"].startswith("superseded")

    def test_budget_leaves_the_rest_for_the_next_run(self) -> None:
        """Past the panel's budget no operation starts; the rest stay queued."""
        configs = [queued(i, "disabled", False) for i in range(1, 8)]
        run, store, clients, _ = worker(configs)
        run = attrs.evolve(run, budget_s=1.0, per_panel=1)
        run(rate=3)
        assert len(calls(clients)) == 3
        assert len(store.pending_operations()) == 4
