"""Panel resolution: one rule, whether panels come from the table or from memory."""

from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import InMemoryPanels
from usage_core.model import ConfigFilter, Panel, ResellerConfig
from usage_core.targets import PanelDirectory, resolve_panel

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
