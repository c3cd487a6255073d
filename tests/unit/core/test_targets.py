"""Panel resolution: one rule, whether panels come from the table or from memory."""

from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import InMemoryPanels
from usage_core.model import ConfigFilter, Panel, PanelType, ResellerConfig
from usage_core.targets import PanelDirectory, effective_panel_type, resolve_panel

TYPES = ["marzban", "eylandoo", "xui"]


def config(panel_id: int | None, panel_type: str) -> ResellerConfig:
    """An active config naming `panel_id` (or none) and `panel_type`."""
    return ResellerConfig(1, 1, "active", panel_type, panel_id, "u", "u", 0, 0)


panels = st.lists(
    st.tuples(st.integers(1, 9), st.sampled_from(TYPES)), unique_by=lambda p: p[0], max_size=6
).map(lambda rows: [Panel(pid, f"p{pid}", "http://p", kind) for pid, kind in rows])


class TestResolvePanel:
    """`resolve_panel` gives the same answer over the directory as over the repository."""

    @given(panels, st.one_of(st.none(), st.integers(1, 9)), st.sampled_from(TYPES))
    def test_directory_matches_the_table(
        self, rows: list[Panel], panel_id: int | None, panel_type: str
    ) -> None:
        """An in-memory directory resolves every config as the `panels` table does."""
        wanted = config(panel_id, panel_type)
        assert resolve_panel(wanted, PanelDirectory(rows)) == resolve_panel(
            wanted, InMemoryPanels(rows)
        )

    def test_missing_panel_id_does_not_fall_back(self) -> None:
        """A `panel_id` naming no row is a failure, never another panel of the type."""
        resolution = resolve_panel(
            config(7, "marzban"), PanelDirectory([Panel(1, "a", "u", "marzban")])
        )
        assert resolution.panel is None
        assert resolution.problem == "panel 7 not found"

    def test_owned_by_selects_ids_and_the_types_whose_first_panel_they_are(self) -> None:
        """A fan-out job for panel 1 also owns unassigned configs of panel 1's type."""
        directory = PanelDirectory(
            [
                Panel(2, "b", "u", "marzban"),
                Panel(1, "a", "u", "marzban"),
                Panel(3, "c", "u", "xui"),
            ]
        )
        assert directory.owned_by(frozenset({1})) == ConfigFilter(
            frozenset({1}), frozenset({"marzban"})
        )
        assert directory.owned_by(frozenset({2})) == ConfigFilter(frozenset({2}), frozenset())


class TestConfigFilter:
    """A fan-out's filters: a job's panels, and every config outside all of its jobs."""

    @given(
        st.frozensets(st.integers(1, 9), max_size=4),
        st.frozensets(st.sampled_from(TYPES)),
        st.one_of(st.none(), st.integers(1, 9)),
        st.sampled_from(TYPES),
    )
    def test_a_filter_and_its_complement_split_every_config(
        self, ids: frozenset[int], types: frozenset[str], panel_id: int | None, panel_type: str
    ) -> None:
        """Each config is selected by exactly one of a filter and its complement."""
        only = ConfigFilter(ids, types)
        wanted = config(panel_id, panel_type)
        assert only.matches(wanted) is not only.complement().matches(wanted)
        assert only.complement().complement() == only


class TestPanelNamesItsType:
    """`extra.usage_sync_panel_type` decides the type a panel row speaks."""

    def test_extra_overrides_the_column_and_the_config(self) -> None:
        """A panel stored as `other` naming `pasarguard` speaks PasarGuard to a Marzban config."""
        panel = Panel(3, "pg", "u", "other", extra={"usage_sync_panel_type": " PasarGuard "})
        assert panel.type_name == "pasarguard"
        assert panel.kind is PanelType.PASARGUARD
        assert panel.type_problem is None
        assert effective_panel_type(config(3, "marzban"), panel) is PanelType.PASARGUARD

    def test_without_the_key_the_column_decides_and_the_config_fills_in(self) -> None:
        """Rows without the key keep the earlier rule: the panel's type, else the config's."""
        assert Panel(1, "m", "u", "marzban").type_name == "marzban"
        other = Panel(2, "o", "u", "other", extra={"usage_sync_panel_type": ""})
        assert effective_panel_type(config(2, "xui"), other) is PanelType.XUI
        assert other.type_problem == "unsupported panel type 'other'"

    @given(st.one_of(st.text(max_size=60), st.integers(), st.booleans(), st.lists(st.integers())))
    def test_an_unknown_name_is_a_problem_never_the_configs_type(self, name: object) -> None:
        """Whatever the key holds, an unknown name gives a reason and no fallback type."""
        panel = Panel(4, "x", "u", "marzban", extra={"usage_sync_panel_type": name})
        if panel.kind is None and panel.names_its_type:
            assert effective_panel_type(config(4, "marzban"), panel) is None
            problem = panel.type_problem or ""
            assert problem.startswith("extra.usage_sync_panel_type names an unknown panel type")
            assert len(problem) < 250

    def test_unassigned_configs_find_panels_by_their_real_type(self) -> None:
        """A config without panel_id and type `hiddify` resolves to the first Hiddify panel."""
        rows = [
            Panel(1, "a", "u", "other", extra={"usage_sync_panel_type": "marzban"}),
            Panel(2, "b", "u", "marzban"),
            Panel(3, "c", "u", "other", extra={"usage_sync_panel_type": "hiddify"}),
        ]
        for lookup in (PanelDirectory(rows), InMemoryPanels(rows)):
            assert resolve_panel(config(None, "hiddify"), lookup).panel == rows[2]
            assert resolve_panel(config(None, "marzban"), lookup).panel == rows[0]
            assert resolve_panel(config(None, "other"), lookup).panel is None
