"""The full sync over fakes: grouping per panel, isolation of failures, totals."""

import logging
import threading
import time
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import (
    FixedClock,
    InMemoryConfigs,
    InMemoryPanels,
    InMemoryResellers,
    ScriptedPanelClients,
    ScriptedSession,
)
from usage_core import sync_all
from usage_core.ledger import LedgerState, advance
from usage_core.model import Panel, ResellerConfig, Secret
from usage_core.plan import SyncPlan, plan_sync
from usage_core.ports import PanelSession
from usage_core.readings import NO_USAGE_FIELDS, CounterReading, HardFailure, UsageResult
from usage_core.sync_all import SyncAllUsage

PANELS = [
    Panel(1, "eyl", "http://e", "eylandoo", api_token=Secret("k")),
    Panel(2, "mz", "http://m", "marzban", username="a", password=Secret("p")),
]


def cfg(
    config_id: int, reseller_id: int, panel_id: int | None, user: str, **kw: object
) -> ResellerConfig:
    """An active config of `reseller_id` on `panel_id` named `user`."""
    panel_type = {1: "eylandoo", 2: "marzban"}.get(panel_id or 0, "marzban")
    base = ResellerConfig(
        id=config_id,
        reseller_id=reseller_id,
        status="active",
        panel_type=panel_type,
        panel_id=panel_id,
        panel_user_id=user,
        external_username=user,
        usage_bytes=0,
        traffic_limit_bytes=10**10,
    )
    return attrs.evolve(base, **kw)


def reading(n: int) -> CounterReading:
    """A reading of `n` bytes."""
    return CounterReading(n, "used_traffic")


def run(
    configs: list[ResellerConfig],
    results: dict[int, dict[str, UsageResult]],
    active: list[int],
    clients: ScriptedPanelClients | None = None,
) -> tuple[SyncAllUsage, InMemoryConfigs, InMemoryResellers, ScriptedPanelClients]:
    """A full sync over fakes, not yet run."""
    store = InMemoryConfigs(configs)
    resellers = InMemoryResellers(store, dict.fromkeys(active, 0) | {9: 0}, {}, active)
    scripted = clients or ScriptedPanelClients(results)
    clock = FixedClock(datetime(2026, 11, 24, tzinfo=UTC))
    use_case = SyncAllUsage(store, resellers, InMemoryPanels(PANELS), scripted, clock)
    return use_case, store, resellers, scripted


class TestSyncAll:
    """`SyncAllUsage` syncs every active config of every active traffic reseller."""

    def test_one_session_per_panel(self) -> None:
        """Configs on the same panel share one session; each panel gets its own."""
        configs = [cfg(i, 1, 1 + i % 2, f"u{i}") for i in range(1, 7)]
        results = {
            1: {f"u{i}": reading(i) for i in range(7)},
            2: {f"u{i}": reading(i) for i in range(7)},
        }
        use_case, store, _, clients = run(configs, results, [1])
        summary = use_case()
        assert sorted(pid for pid, _ in clients.sessions) == [1, 2]
        assert summary.total("updated") == 6
        assert all(session.closed for _, session in clients.sessions)
        assert store.rows[3].usage_bytes == 3

    def test_only_active_traffic_resellers_and_active_configs(self) -> None:
        """Configs of other resellers and inactive configs are left alone."""
        configs = [
            cfg(1, 1, 2, "a"),
            cfg(2, 1, 2, "b", status="disabled"),
            cfg(3, 9, 2, "c"),
        ]
        results = {2: {"a": reading(5), "b": reading(6), "c": reading(7)}}
        use_case, store, resellers, _ = run(configs, results, [1])
        use_case()
        assert [store.rows[i].usage_bytes for i in (1, 2, 3)] == [5, 0, 0]
        assert resellers.used == {1: 5, 9: 0}

    def test_failures_do_not_stop_the_others(self) -> None:
        """A hard failure, a missing panel and an empty username each fail alone."""
        configs = [
            cfg(1, 1, 2, "ok1"),
            cfg(2, 1, 2, "down"),
            cfg(3, 1, 99, "nopanel"),
            cfg(4, 1, 2, ""),
            cfg(5, 1, 1, "ok2"),
        ]
        results = {
            2: {"ok1": reading(10), "down": HardFailure("HTTP 502")},
            1: {"ok2": reading(20)},
        }
        use_case, store, resellers, _ = run(configs, results, [1])
        summary = use_case()
        assert (store.rows[1].usage_bytes, store.rows[5].usage_bytes) == (10, 20)
        assert (summary.total("failed"), summary.total("skipped")) == (1, 2)
        assert summary.total("updated") == 2
        assert resellers.used[1] == 30
        assert summary.as_dict()["per_panel"] == {
            "1": {"type": "eylandoo", "read": 1, "failed": 0},
            "2": {"type": "marzban", "read": 1, "failed": 1},
        }

    def test_failed_configs_are_listed_with_panel_and_reason(self) -> None:
        """Each failed config is listed with the panel read and the reason; skips are not."""
        configs = [cfg(1, 1, 2, "ok"), cfg(2, 1, 2, "down"), cfg(3, 1, 99, "nopanel")]
        results = {2: {"ok": reading(10), "down": HardFailure("HTTP 502")}}
        use_case, _, _, _ = run(configs, results, [1])
        document = use_case().as_dict()
        assert document["failed_configs"] == [{"id": 2, "panel": 2, "reason": "HTTP 502"}]
        assert document["failed_configs_not_listed"] == 0

    def test_failed_configs_list_is_bounded(self) -> None:
        """A run where every config fails lists the first 50 and counts the rest."""
        configs = [cfg(i, 1, 2, f"u{i}") for i in range(1, 121)]
        results = {2: {f"u{i}": HardFailure("panel down") for i in range(1, 121)}}
        use_case, _, _, _ = run(configs, results, [1])
        document = use_case().as_dict()
        failed = document["failed_configs"]
        assert isinstance(failed, list)
        assert (len(failed), document["failed_configs_not_listed"]) == (50, 70)
        assert document["failed"] == 120

    def test_a_panel_that_raises_fails_only_its_configs(self) -> None:
        """A panel whose session raises fails its own configs; other panels sync."""

        class Exploding(ScriptedSession):
            def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
                raise RuntimeError("unexpected")

        class Clients(ScriptedPanelClients):
            def open(self, panel: Panel) -> PanelSession:
                cls = Exploding if panel.id == 2 else ScriptedSession
                session = cls(self.results.get(panel.id, {}))
                self.sessions.append((panel.id, session))
                return session

        configs = [cfg(1, 1, 2, "a"), cfg(2, 1, 2, "b"), cfg(3, 1, 1, "c")]
        results = {1: {"c": reading(7)}}
        use_case, store, _, clients = run(configs, results, [1], Clients(results))
        summary = use_case()
        assert summary.total("failed") == 2
        assert store.rows[3].usage_bytes == 7
        assert summary.as_dict()["per_panel"] == {
            "1": {"type": "eylandoo", "read": 1, "failed": 0},
            "2": {"type": "marzban", "read": 0, "failed": 2},
        }
        assert all(session.closed for _, session in clients.sessions)

    def test_writes_are_batched(self) -> None:
        """Changed rows are written in batches, unchanged rows not at all."""
        configs = [cfg(i, 1, 2, f"u{i}") for i in range(1, 2502)]
        results = {2: {f"u{i}": reading(i % 2) for i in range(1, 2502)}}
        use_case, _, _, _ = run(configs, results, [1])
        summary = use_case()
        assert use_case.configs.batches == [1251]  # type: ignore[attr-defined]
        assert (summary.total("updated"), summary.total("unchanged")) == (1251, 1250)

    def test_reset_is_counted_and_total_kept(self) -> None:
        """A panel-side counter reset is counted and does not lower the reseller's total."""
        configs = [cfg(1, 1, 2, "a", usage_bytes=1000, last_counter=1000)]
        use_case, store, resellers, _ = run(configs, {2: {"a": reading(100)}}, [1])
        summary = use_case()
        assert summary.resets == 1
        assert store.rows[1].ledger == LedgerState(100, 1000, 100)
        assert resellers.used[1] == 1100

    def test_seed_log_lines(self, caplog: pytest.LogCaptureFixture) -> None:
        """The run logs the seed's start, per-reseller, Eylandoo and completion lines."""
        configs = [cfg(1, 1, 1, "e1"), cfg(2, 1, 1, "e2")]
        use_case, _, _, _ = run(configs, {1: {"e1": reading(1)}}, [1])
        with caplog.at_level(logging.INFO):
            use_case()
        text = caplog.text
        assert "Starting reseller usage sync" in text
        assert "Syncing usage for reseller 1" in text
        assert "Eylandoo usage for user e1: 1 bytes" in text
        assert "Eylandoo usage fetch failed for user e2 (hard failure)" in text
        completed = [r for r in caplog.records if r.getMessage() == "Reseller usage sync completed"]
        assert completed[0].context == {"eylandoo_configs_processed": 2}  # type: ignore[attr-defined]

    def test_a_reply_without_usage_fields_keeps_the_usage(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 0 read from a reply with no usage field is no reset: usage kept, and said so."""
        configs = [cfg(1, 1, 1, "e1", usage_bytes=700, last_counter=700)]
        listed = {1: {"e1": CounterReading(0, NO_USAGE_FIELDS)}}
        use_case, store, _, _ = run(configs, listed, [1])
        with caplog.at_level(logging.WARNING):
            summary = use_case()
        assert store.rows[1].ledger == LedgerState(700, 0, 700)
        assert (summary.total("unchanged"), summary.resets) == (1, 0)
        assert (
            "Config 1: the panel reply had no usage field; keeping the stored usage" in caplog.text
        )

    def test_abort_on_reraises(self) -> None:
        """An exception listed in `abort_on` (a job timeout) ends the run."""

        class JobTimeoutError(Exception):
            pass

        class Slow(ScriptedSession):
            def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
                raise JobTimeoutError

        class Clients(ScriptedPanelClients):
            def open(self, panel: Panel) -> PanelSession:
                return Slow({})

        use_case, _, _, _ = run([cfg(1, 1, 2, "a")], {}, [1], Clients({}))
        use_case.abort_on = (JobTimeoutError,)
        with pytest.raises(JobTimeoutError):
            use_case()

    def test_progress_reaches_the_total(self) -> None:
        """The progress callback ends with every config counted, per panel type."""
        configs = [cfg(i, 1, 2, f"u{i}") for i in range(1, 4)] + [cfg(9, 1, 2, "")]
        use_case, _, _, _ = run(configs, {2: {}}, [1])
        seen: list[tuple[int, int, int]] = []
        use_case(progress=lambda s: seen.append((s.done, s.configs, s.counts["marzban"]["failed"])))
        assert seen[-1] == (4, 4, 3)

    def test_a_panels_rows_and_readings_are_let_go_once_it_is_applied(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While a slow panel is still read, the configs and readings of one applied are freed."""
        configs = [cfg(i, 1, 1 + i % 2, f"u{i}") for i in range(1, 9)]
        use_case, _, _, _ = run(configs, {}, [1])
        held: dict[int, list[weakref.ref[object]]] = {1: [], 2: []}

        def tracked_plan(*args: object, **kwargs: object) -> SyncPlan:
            plan = plan_sync(*args, **kwargs)  # type: ignore[arg-type]
            for job in plan.jobs:
                held[job.panel.id] += [weakref.ref(group) for group in job.groups]
            return plan

        monkeypatch.setattr(sync_all, "plan_sync", tracked_plan)
        first_applied = threading.Event()
        freed: list[bool] = []

        class Readings(dict[str, UsageResult]):
            """A dict that a weak reference can follow."""

        class Slow(ScriptedSession):
            def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
                first_applied.wait(5)
                deadline = time.monotonic() + 5
                while any(ref() is not None for ref in held[1]) and time.monotonic() < deadline:
                    time.sleep(0.01)
                freed.append(all(ref() is None for ref in held[1]))
                return {name: reading(7) for name in usernames}

        class Fast(ScriptedSession):
            def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
                readings = Readings((name, reading(int(name[1:]))) for name in usernames)
                held[1].append(weakref.ref(readings))
                return readings

        class Clients(ScriptedPanelClients):
            def open(self, panel: Panel) -> PanelSession:
                return Slow({}) if panel.id == 2 else Fast({})

        use_case.clients = Clients({})
        summary = use_case(progress=lambda _: first_applied.set())
        assert freed == [True]
        assert len(held[1]) == 2  # the panel's group of configs and its readings
        assert summary.total("updated") == 8
        assert all(ref() is None for ref in held[2])

    def test_the_rows_are_taken_once_as_they_stream(self) -> None:
        """A store whose rows can be iterated only once gives the same run as one holding a list."""
        configs = [cfg(i, 1, 1 + i % 2, f"u{i}", usage_bytes=i) for i in range(1, 9)]
        configs += [cfg(9, 1, 1, "off", status="disabled", usage_bytes=100)]
        results = {panel: {f"u{i}": reading(10 * i) for i in range(1, 9)} for panel in (1, 2)}
        listed, _, listed_resellers, _ = run(configs, results, [1])
        streamed, store, streamed_resellers, _ = run(configs, results, [1])
        synced_items = store.synced_items
        store.synced_items = lambda only=None: iter(synced_items(only))  # type: ignore[method-assign]
        assert streamed().as_dict() == listed().as_dict()
        assert streamed_resellers.used == listed_resellers.used
        # Every row counted once, the disabled config's included.
        assert streamed_resellers.used[1] == sum(c.ledger.total_bytes for c in store.rows.values())
        assert streamed_resellers.used[1] > 100

    def test_row_changed_under_the_batch_is_retried(self) -> None:
        """The app's reset between the read and the batch write is kept, and growth added."""
        configs = [cfg(1, 1, 2, "a", usage_bytes=1000, last_counter=1000)]
        use_case, store, resellers, _ = run(configs, {2: {"a": reading(1500)}}, [1])
        raced: list[int] = []

        def app_resets(config_id: int) -> None:
            if not raced:
                raced.append(config_id)
                store.put_ledger(config_id, LedgerState(0, 1000, 1000))

        store.before_save = app_resets
        summary = use_case()
        assert store.rows[1].ledger == LedgerState(500, 1000, 1500)
        assert summary.total("updated") == 1
        assert resellers.used[1] == 1500

    def test_one_panel_of_a_fan_out(self) -> None:
        """A panel job syncs its panel's configs, typed ones without panel_id, and no totals."""
        configs = [
            cfg(1, 1, 2, "a"),
            cfg(2, 2, None, "b", usage_bytes=4),
            cfg(3, 1, 1, "c"),
            cfg(4, 1, 2, "d", status="disabled", usage_bytes=10, settled_bytes=1),
        ]
        results = {2: {"a": reading(5), "b": reading(6)}, 1: {"c": reading(7)}}
        use_case, store, resellers, _ = run(configs, results, [1, 2])
        part = use_case.sync_part(frozenset({2}))
        assert [store.rows[i].usage_bytes for i in (1, 2, 3)] == [5, 6, 0]
        assert part.summary.configs == 2
        # Every config the job read counts, the disabled one too; panel 1's config does not.
        assert part.reseller_sums == {1: 5 + 11, 2: 6}
        assert resellers.used == {1: 0, 2: 0, 9: 0}

    def test_the_totals_job_reads_only_the_configs_no_panel_job_read(self) -> None:
        """Panel 2's sums come from its job; the totals job reads panel 1's config and the rest."""
        configs = [
            cfg(1, 1, 2, "a"),
            cfg(2, 1, 1, "c", usage_bytes=7),
            cfg(3, 2, 5, "gone", usage_bytes=3),  # its panel row is missing
        ]
        use_case, store, resellers, _ = run(configs, {}, [1, 2])
        read: list[int] = []
        synced_items = store.synced_items
        store.synced_items = lambda only=None: [  # type: ignore[method-assign]
            *(read.append(item.id) or item for item in synced_items(only))
        ]
        summary = use_case.totals_of_parts({1: 100}, frozenset({2}))
        assert sorted(read) == [2, 3]
        assert resellers.used == {1: 107, 2: 3, 9: 0}
        assert summary.resellers_updated == 2

    def test_a_fan_out_ends_with_the_totals_of_a_single_run(self) -> None:
        """Every panel's part plus the totals job gives each reseller the single run's total."""
        configs = [
            cfg(1, 1, 2, "a", usage_bytes=2),
            cfg(2, 2, None, "b", settled_bytes=9),
            cfg(3, 1, 1, "c"),
            cfg(4, 2, 1, "d", status="expired", usage_bytes=40),
            cfg(5, 1, 6, "lost", usage_bytes=8),
        ]
        results = {2: {"a": reading(5), "b": reading(6)}, 1: {"c": reading(7)}}
        single, _, single_resellers, _ = run(configs, results, [1, 2])
        single()
        fanned, _, fanned_resellers, _ = run(configs, results, [1, 2])
        panels = fanned.panels_with_work()
        parts = [fanned.sync_part(frozenset({panel_id})) for panel_id in panels]
        sums: dict[int, int] = {}
        for part in parts:
            for reseller_id, total in part.reseller_sums.items():
                sums[reseller_id] = sums.get(reseller_id, 0) + total
        fanned.totals_of_parts(sums, frozenset(panels))
        assert panels == [1, 2]
        assert fanned_resellers.used == single_resellers.used == {1: 5 + 7 + 8, 2: 15 + 40, 9: 0}

    def test_panels_with_work_reads_no_config_row(self) -> None:
        """The panels come from the store's distinct panel keys; a panel of bad rows has work."""
        configs = [
            cfg(1, 1, 2, "a"),
            cfg(2, 1, None, "b", panel_type="eylandoo"),
            cfg(3, 1, 7, "x"),
            cfg(4, 1, 2, "d", status="disabled"),
        ]
        use_case, store, _, _ = run(configs, {}, [1])
        store.synced_items = None  # type: ignore[assignment,method-assign]
        assert use_case.panels_with_work() == [1, 2]


_ROWS = st.lists(
    st.tuples(
        st.integers(0, 3000),  # usage_bytes
        st.integers(0, 500),  # settled bytes
        st.none() | st.integers(0, 3000),  # last counter
        st.none() | st.integers(0, 6000),  # last lifetime
        st.none() | st.integers(0, 3000),  # the panel's counter; None: not listed
        st.none() | st.integers(0, 6000),  # the panel's lifetime
        st.booleans(),  # the reply had a usage field
    ),
    min_size=1,
    max_size=8,
)


@given(_ROWS)
def test_every_row_ends_as_advance_says(rows: list[tuple]) -> None:  # type: ignore[type-arg]
    """Each config's stored ledger and each reseller's total are what `advance` gives."""
    configs, listed = [], {}
    for n, (usage, settled, last, last_lifetime, counter, lifetime, has_usage) in enumerate(rows):
        config = cfg(
            n + 1,
            n % 2 + 1,
            2,
            f"u{n}",
            usage_bytes=usage,
            settled_bytes=settled,
            last_counter=last,
            last_lifetime=last_lifetime if last is not None else None,
        )
        configs.append(config)
        if counter is not None:
            path = "used_traffic" if has_usage else NO_USAGE_FIELDS
            listed[f"u{n}"] = CounterReading(counter, path, lifetime_bytes=lifetime)
    use_case, store, resellers, _ = run(configs, {2: listed}, [1, 2])
    use_case()
    expected: dict[int, LedgerState] = {}
    for config in configs:
        got = listed.get(config.panel_user_id or "")
        state = config.ledger
        if got is not None:
            may_reset = got.has_usage_field
            state = advance(
                state, got.bytes, may_reset=may_reset, lifetime=got.lifetime_bytes
            ).after
        expected[config.id] = state
        assert store.rows[config.id].ledger == state
    for reseller_id in (1, 2):
        total = sum(
            s.total_bytes for i, s in expected.items() if store.rows[i].reseller_id == reseller_id
        )
        assert resellers.used[reseller_id] == total
