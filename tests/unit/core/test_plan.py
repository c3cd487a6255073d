"""`plan_sync`: which panel reads which config, and which configs are not read."""

import attrs
from hypothesis import given
from hypothesis import strategies as st

from usage_core.ledger import LedgerState
from usage_core.model import (
    LedgerSnapshot,
    Panel,
    ResellerConfig,
    ResellerUsage,
    SyncItem,
    SyncWork,
)
from usage_core.plan import Unread, plan_sync
from usage_core.targets import PanelDirectory

PANELS = [
    Panel(1, "eyl", "http://e", "eylandoo"),
    Panel(2, "mz", "http://m", "marzban"),
    Panel(3, "mz2", "http://m2", "marzban"),
]


def item(
    config_id: int, panel_id: int | None, panel_type: str = "marzban", **kw: object
) -> SyncItem:
    """A sync item for a config of reseller 1."""
    config = ResellerConfig(
        id=config_id,
        reseller_id=1,
        status="active",
        panel_type=panel_type,
        panel_id=panel_id,
        panel_user_id=f"u{config_id}",
        external_username=f"ext{config_id}",
        usage_bytes=0,
        traffic_limit_bytes=0,
    )
    config = attrs.evolve(config, **kw)
    return SyncItem.of(config, LedgerSnapshot(config_id, LedgerState(0), 0))


def work(*items: SyncItem) -> SyncWork:
    """The work of reseller 1 with these items."""
    return SyncWork([ResellerUsage(1, 0)], list(items))


class TestPlan:
    """Configs are grouped by resolved panel; the unread ones say why."""

    def test_grouping_by_resolved_panel(self) -> None:
        """`panel_id` wins; without it the lowest-id panel of the type is used."""
        plan = plan_sync(work(item(1, 2), item(2, None), item(3, 3)), PanelDirectory(PANELS))
        assert {job.panel.id: [t.config_id for t in job.targets] for job in plan.jobs} == {
            2: [1, 2],
            3: [3],
        }
        assert plan.configs == 3
        assert plan.unread == []

    def test_unread_configs_say_why(self) -> None:
        """A bad row fails; a missing panel or username is skipped; inactive is not counted."""
        plan = plan_sync(
            work(
                item(1, 9),
                item(2, 2, problem="config 2: meta is not valid JSON"),
                item(3, 2, panel_user_id=None),
                item(4, 2, status="disabled"),
                item(5, 1, "eylandoo", panel_user_id="0", external_username=""),
            ),
            PanelDirectory(PANELS),
        )
        whys = {u.config.id: (u.why, u.why.outcome) for u in plan.unread}
        assert whys == {
            1: (Unread.NO_PANEL, "skipped"),
            2: (Unread.BAD_ROW, "failed"),
            3: (Unread.NO_USERNAME, "skipped"),
            5: (Unread.NO_USERNAME, "skipped"),
        }
        assert plan.configs == 4
        assert plan.eylandoo_configs == 1
        assert plan.jobs == []

    def test_eylandoo_falls_back_to_the_external_username(self) -> None:
        """An Eylandoo config without a panel user id is read under its external username."""
        plan = plan_sync(work(item(1, 1, "eylandoo", panel_user_id="")), PanelDirectory(PANELS))
        [job] = plan.jobs
        assert [t.username for t in job.targets] == ["ext1"]
        assert job.targets[0].label == "Eylandoo"

    def test_fan_out_part_takes_only_its_panels(self) -> None:
        """With `panel_ids`, configs resolving elsewhere are neither read nor counted."""
        plan = plan_sync(
            work(item(1, 2), item(2, 3), item(3, None), item(4, 9)),
            PanelDirectory(PANELS),
            frozenset({2}),
        )
        assert [[t.config_id for t in job.targets] for job in plan.jobs] == [[1, 3]]
        assert plan.configs == 2

    @given(
        st.lists(
            st.tuples(st.sampled_from([None, 1, 2, 3, 4]), st.sampled_from(["active", "disabled"])),
            max_size=30,
        )
    )
    def test_every_active_config_is_read_or_explained_once(
        self, rows: list[tuple[int | None, str]]
    ) -> None:
        """Each active config lands in exactly one job or the unread list; no other does."""
        items = [item(i, pid, status=status) for i, (pid, status) in enumerate(rows, 1)]
        plan = plan_sync(work(*items), PanelDirectory(PANELS))
        planned = [t.config_id for job in plan.jobs for t in job.targets]
        planned += [u.config.id for u in plan.unread]
        active = [i for i, (_, status) in enumerate(rows, 1) if status == "active"]
        assert sorted(planned) == active
        assert plan.configs == len(active)


BYTES = st.integers(0, 2**63 - 1)


class TestTargetGroup:
    """A group keeps its configs as columns and gives each one's ledger back as read."""

    @given(
        st.lists(
            st.tuples(
                st.integers(-(2**63), 2**63 - 1),
                BYTES,
                st.none() | BYTES,
                st.none() | BYTES,
                st.none() | st.text(max_size=16) | st.integers(-(2**63), 2**63 - 1),
                st.booleans(),
            ),
            max_size=20,
        )
    )
    def test_each_row_comes_back_as_read(
        self, ledgers: list[tuple[int, int, int | None, int | None, object, bool]]
    ) -> None:
        """`row(i)` holds the id, reseller, ledger, version and staleness the store read."""
        items = []
        for i, (usage, settled, counter, lifetime, version, stale) in enumerate(ledgers, 1):
            config = attrs.evolve(item(i, 2).config, reseller_id=100 + i, usage_bytes=usage)
            state = LedgerState(usage, settled, counter, lifetime)
            snapshot = LedgerSnapshot(i, state, version, stale=stale)
            items.append(SyncItem.of(config, snapshot))
        plan = plan_sync(work(*items), PanelDirectory(PANELS))
        rows = [
            group.row(i) for job in plan.jobs for group in job.groups for i in range(len(group))
        ]
        assert [(r.config_id, r.reseller_id, r.state, r.version, r.stale) for r in rows] == [
            (i.id, i.reseller_id, i.state, i.version, i.stale) for i in items
        ]

    def test_a_usage_beyond_64_bits_is_a_bad_row_not_a_crash(self) -> None:
        """A row whose usage no column of numbers holds is failed alone; the others are read."""
        huge = attrs.evolve(item(2, 2).config, usage_bytes=2**64)
        items = [
            item(1, 2),
            SyncItem.of(huge, LedgerSnapshot(2, LedgerState(2**64), None)),
            item(3, 2),
        ]
        plan = plan_sync(work(*items), PanelDirectory(PANELS))
        assert [t.config_id for job in plan.jobs for t in job.targets] == [1, 3]
        (unread,) = plan.unread
        assert (unread.config.id, unread.why) == (2, Unread.BAD_ROW)
        assert unread.config.problem == "usage_bytes is out of the 64-bit range"
        assert len(plan.jobs[0].groups[0].usernames) == 2
