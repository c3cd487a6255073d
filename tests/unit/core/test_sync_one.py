"""The sync-one use case, driven through in-memory fakes."""

import logging

import attrs
import pytest

from tests.fakes import InMemoryConfigs, InMemoryPanels, InMemoryResellers, ScriptedPanelClients
from usage_core.errors import ConcurrentUpdateError, CredentialsError, SupersededReadingError
from usage_core.ledger import LedgerState, StepKind
from usage_core.model import Panel, ResellerConfig, Secret
from usage_core.readings import CounterReading, HardFailure
from usage_core.recording import record_counter
from usage_core.sync_one import SyncOneConfig

EYLANDOO = Panel(
    10, "Eylandoo Production", "https://panel.example.com", "eylandoo", api_token=Secret("k")
)
MARZBAN = Panel(
    20, "Marzban", "https://mz.example.com", "marzban", username="admin", password=Secret("pw")
)


def config(**changes: object) -> ResellerConfig:
    """The seed's example config, with changes."""
    base = ResellerConfig(
        id=123,
        reseller_id=45,
        status="active",
        panel_type="eylandoo",
        panel_id=10,
        panel_user_id="test_user_123",
        external_username="test_user_123",
        usage_bytes=524_288_000,
        traffic_limit_bytes=10_737_418_240,
    )
    return attrs.evolve(base, **changes)


@attrs.define
class World:
    """The use case with its fakes."""

    configs: InMemoryConfigs
    resellers: InMemoryResellers
    clients: ScriptedPanelClients
    use_case: SyncOneConfig


def world(
    configs: list[ResellerConfig],
    results: dict[int, dict[str, CounterReading | HardFailure]],
    panels: list[Panel] | None = None,
    forgiven: int = 0,
) -> World:
    """A use case over fakes holding `configs` and answering `results`."""
    store = InMemoryConfigs(configs)
    resellers = InMemoryResellers(store, {45: 0}, {45: forgiven})
    clients = ScriptedPanelClients(results)
    panel_repo = InMemoryPanels(panels if panels is not None else [EYLANDOO, MARZBAN])
    use_case = SyncOneConfig(store, panel_repo, resellers, clients)
    return World(store, resellers, clients, use_case)


GIB_READING = CounterReading(1_073_741_824, "userInfo.total_traffic_bytes")


class TestSyncOne:
    """`SyncOneConfig` fetches, records through the ledger, and refreshes the reseller."""

    def test_seed_example(self) -> None:
        """500 MB stored, 1024 MB on the panel: usage becomes 1024 MB, delta 524 MB."""
        w = world([config()], {10: {"test_user_123": GIB_READING}})
        report = w.use_case(123)
        assert report.ok
        assert report.step is not None
        assert (report.step.before.usage_bytes, report.step.after.usage_bytes) == (
            524_288_000,
            1_073_741_824,
        )
        assert w.configs.rows[123].usage_bytes == 1_073_741_824
        assert w.configs.rows[123].last_counter == 1_073_741_824
        assert report.reseller is not None
        assert w.resellers.used[45] == 1_073_741_824

    def test_unknown_config(self) -> None:
        """An unknown id reports not found and fetches nothing."""
        w = world([], {})
        report = w.use_case(999)
        assert not report.found
        assert w.clients.sessions == []

    def test_hard_failure_writes_nothing(self) -> None:
        """A hard failure leaves usage_bytes and the reseller total alone."""
        w = world([config()], {10: {"test_user_123": HardFailure("HTTP 500")}})
        report = w.use_case(123)
        assert not report.ok
        assert report.failure == HardFailure("HTTP 500")
        assert w.configs.rows[123].usage_bytes == 524_288_000
        assert w.configs.writes == 0
        assert w.resellers.used[45] == 0

    def test_panel_counter_reset_settles(self) -> None:
        """A counter below the last one moves usage to settled; the total keeps rising."""
        seen = config(usage_bytes=900, last_counter=900, settled_bytes=100)
        w = world([seen], {10: {"test_user_123": CounterReading(30, "total_traffic_bytes")}})
        report = w.use_case(123)
        assert report.step is not None
        assert report.step.kind is StepKind.RESET
        assert w.configs.rows[123].ledger == LedgerState(30, 1000, 30)
        assert w.resellers.used[45] == 1030

    def test_forgiven_bytes_are_subtracted(self) -> None:
        """The reseller total subtracts admin_forgiven_bytes."""
        w = world([config()], {10: {"test_user_123": GIB_READING}}, forgiven=73_741_824)
        w.use_case(123)
        assert w.resellers.used[45] == 1_000_000_000

    def test_eylandoo_falls_back_to_external_username(self) -> None:
        """An Eylandoo config without panel_user_id is fetched by external_username."""
        w = world([config(panel_user_id=None, external_username="ext")], {10: {"ext": GIB_READING}})
        assert w.use_case(123).ok

    def test_empty_username_is_skipped_with_the_seed_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No username at all: no request, and the seed's warning."""
        w = world([config(panel_user_id="", external_username="")], {})
        with caplog.at_level(logging.WARNING):
            report = w.use_case(123)
        assert not report.ok
        assert w.clients.sessions == []
        assert "Eylandoo usage fetch skipped: empty username" in caplog.text

    def test_marzban_needs_panel_user_id(self) -> None:
        """Marzban configs do not fall back to external_username."""
        w = world([config(panel_type="marzban", panel_id=20, panel_user_id=None)], {})
        assert not w.use_case(123).ok

    def test_missing_panel_row_fails_without_fallback(self) -> None:
        """A panel_id naming a missing row is a failure, not a reason to use another panel."""
        w = world([config(panel_id=77)], {10: {"test_user_123": GIB_READING}})
        report = w.use_case(123)
        assert report.failure == HardFailure("panel 77 not found")
        assert w.clients.sessions == []

    def test_no_panel_id_uses_first_panel_of_the_type(self) -> None:
        """Without panel_id, the lowest-id panel of the config's type is used."""
        second = attrs.evolve(EYLANDOO, id=11, name="second")
        w = world(
            [config(panel_id=None)],
            {10: {"test_user_123": GIB_READING}},
            panels=[second, EYLANDOO, MARZBAN],
        )
        report = w.use_case(123)
        assert report.panel == EYLANDOO
        assert report.ok

    def test_no_panel_of_the_type(self) -> None:
        """Without panel_id and without a panel of its type, the config fails clearly."""
        w = world([config(panel_id=None)], {}, panels=[MARZBAN])
        report = w.use_case(123)
        assert report.failure is not None
        assert "No panel found for config 123" in report.failure.reason

    def test_undecryptable_credentials_are_a_failure(self) -> None:
        """A panel whose credentials cannot be read fails the config with the panel named."""

        class BrokenPanels(InMemoryPanels):
            def get(self, panel_id: int) -> Panel | None:
                raise CredentialsError(panel_id, "api_token", "the MAC is invalid")

        w = world([config()], {})
        w.use_case.panels = BrokenPanels()
        report = w.use_case(123)
        assert report.failure is not None
        assert "panel 10: api_token" in report.failure.reason

    def test_session_is_closed(self) -> None:
        """The panel session is closed after the fetch."""
        w = world([config()], {10: {"test_user_123": GIB_READING}})
        w.use_case(123)
        assert [s.closed for _, s in w.clients.sessions] == [True]


class TestRecordCounter:
    """`record_counter` retries its guarded write when a concurrent writer gets there first."""

    def test_concurrent_app_reset_is_kept(self) -> None:
        """The app's reset between our read and write survives, and growth is still added."""
        store = InMemoryConfigs([config(usage_bytes=1000, last_counter=1000)])
        raced = []

        def app_resets(config_id: int) -> None:
            if not raced:
                raced.append(config_id)
                store.put_ledger(config_id, LedgerState(0, 1000, 1000))

        store.before_save = app_resets
        step = record_counter(store, 123, 1500)
        assert step is not None
        assert store.rows[123].ledger == LedgerState(500, 1000, 1500)

    def test_gives_up_after_repeated_conflicts(self) -> None:
        """A row that changes under every write raises instead of looping forever."""
        store = InMemoryConfigs([config(usage_bytes=1000)])
        store.before_save = lambda cid: store.put_ledger(cid, store.rows[cid].ledger)
        with pytest.raises(ConcurrentUpdateError):
            record_counter(store, 123, 1500)

    def test_deleted_config_is_none(self) -> None:
        """A config that is gone records nothing."""
        assert record_counter(InMemoryConfigs(), 1, 5) is None

    def test_reading_older_than_a_concurrent_write_is_dropped(self) -> None:
        """A counter recorded by another sync after our read makes ours superseded."""
        store = InMemoryConfigs([config(usage_bytes=1000, last_counter=1000)])
        store.put_ledger(123, LedgerState(1100, 0, 1100))
        with pytest.raises(SupersededReadingError):
            record_counter(store, 123, 1050, seen_last_counter=1000)
        assert store.rows[123].ledger == LedgerState(1100, 0, 1100)

    def test_reply_without_usage_fields_is_not_a_reset(self) -> None:
        """Eylandoo's "no fields" 0 keeps the stored usage, so nothing is counted twice."""
        store = InMemoryConfigs([config(usage_bytes=1000, last_counter=1000)])
        step = record_counter(store, 123, 0, may_reset=False)
        assert step is not None
        assert not step.changed
        assert store.rows[123].ledger == LedgerState(1000, 0, 1000)
        assert record_counter(store, 123, 1200) is not None
        assert store.rows[123].ledger.total_bytes == 1200
