"""Which panel and which panel-side username a config is fetched with: one rule for all."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from usage_core.model import (
    ConfigFilter,
    Panel,
    PanelType,
    ResellerConfig,
    SyncItem,
    panel_type_of,
)
from usage_core.ports import PanelLookup


@attrs.frozen
class PanelResolution:
    """The panel a config resolves to, or why there is none."""

    panel: Panel | None
    problem: str | None = None
    by_type: bool = False


def resolve_panel(config: ResellerConfig | SyncItem, panels: PanelLookup) -> PanelResolution:
    """`panel_id` when set; otherwise the first panel of the config's type.

    A `panel_id` that names a missing row is a failure, not a reason to fall
    back: usage must never be read from an unrelated panel.
    """
    panel = panel_for(config.panel_id, config.panel_type, panels)
    if config.panel_id is not None:
        if panel is None:
            return PanelResolution(None, f"panel {config.panel_id} not found")
        return PanelResolution(panel)
    if panel is None:
        return PanelResolution(
            None,
            f"No panel found for config {config.id} (panel_id: null, type: {config.panel_type})",
        )
    return PanelResolution(panel, by_type=True)


def panel_for(panel_id: int | None, panel_type: str, panels: PanelLookup) -> Panel | None:
    """The panel of a config with this `panel_id` and `panel_type` columns, or None."""
    if panel_id is not None:
        return panels.get(panel_id)
    return panels.first_of_type(panel_type)


class PanelDirectory:
    """Every panel in memory, answering the same lookups as the `panels` table."""

    def __init__(self, panels: Iterable[Panel]) -> None:
        self._by_id: dict[int, Panel] = {}
        self._first_of_type: dict[str, Panel] = {}
        for panel in sorted(panels, key=lambda p: p.id):
            self._by_id[panel.id] = panel
            self._first_of_type.setdefault(panel.type_name, panel)

    def get(self, panel_id: int) -> Panel | None:
        """The panel with this id, or None."""
        return self._by_id.get(panel_id)

    def first_of_type(self, panel_type: str) -> Panel | None:
        """The panel of this type (`Panel.type_name`) with the lowest id, or None."""
        return self._first_of_type.get(panel_type)

    def owned_by(self, panel_ids: frozenset[int]) -> ConfigFilter:
        """The configs that may resolve to one of `panel_ids`, for the store to select."""
        types = frozenset(
            kind for kind, panel in self._first_of_type.items() if panel.id in panel_ids
        )
        return ConfigFilter(panel_ids, types)


def panel_username(config: ResellerConfig | SyncItem, panel_type: PanelType | None) -> str:
    """The name the panel knows the user by; empty when there is none.

    Eylandoo uses `panel_user_id`, falling back to `external_username` the way
    PHP's `?:` does (empty and "0" fall back); the others use `panel_user_id`.
    """
    primary = config.panel_user_id or ""
    if panel_type is PanelType.EYLANDOO and primary in ("", "0"):
        return config.external_username or ""
    return primary


def effective_panel_type(config: ResellerConfig | SyncItem, panel: Panel) -> PanelType | None:
    """The type whose API the panel speaks: the panel's own, else the config's.

    A type named in the panel's `extra` decides alone, whatever the config's
    `panel_type` column holds; an unknown name there is None, never the config's.
    """
    if panel.names_its_type:
        return panel.kind
    return panel.kind or panel_type_of(config.panel_type)
