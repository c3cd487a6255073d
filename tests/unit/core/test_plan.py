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
        assert {job.panel.id: [t.item.config.id for t in job.targets] for job in plan.jobs} == {
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
        assert [[t.item.config.id for t in job.targets] for job in plan.jobs] == [[1, 3]]
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
        planned = [t.item.config.id for job in plan.jobs for t in job.targets]
        planned += [u.config.id for u in plan.unread]
        active = [i for i, (_, status) in enumerate(rows, 1) if status == "active"]
        assert sorted(planned) == active
        assert plan.configs == len(active)
