"""The plan of a full sync: which panel reads which configs, and which configs are not read.

Pure: the work read from the database and the panels go in, the plan comes out.
"""

from __future__ import annotations

import enum

import attrs

from usage_core.model import Panel, PanelType, ResellerConfig, SyncItem, SyncWork
from usage_core.targets import PanelDirectory, effective_panel_type, panel_username, resolve_panel


@attrs.define(eq=False)
class Target:
    """One config to read from its panel, under the name the panel knows it by."""

    item: SyncItem
    type_name: str
    label: str
    username: str


@attrs.define(eq=False)
class TargetGroup:
    """A panel's configs read under one type and label: their rows and their panel names.

    A full sync plans a million configs: two lists of them here, rather than
    an object for each (`Target`s are built for the few that need one).
    """

    type_name: str
    label: str
    items: list[SyncItem] = attrs.field(factory=list)
    usernames: list[str] = attrs.field(factory=list)


@attrs.define
class PanelJob:
    """One panel and the configs read from it in one session."""

    panel: Panel
    groups: list[TargetGroup] = attrs.field(factory=list)

    @property
    def size(self) -> int:
        """How many configs are read from the panel."""
        return sum(len(group.items) for group in self.groups)

    @property
    def usernames(self) -> list[str]:
        """The names of every config read from the panel, as the panel knows them."""
        return [name for group in self.groups for name in group.usernames]

    @property
    def targets(self) -> list[Target]:
        """Every config read from the panel as a `Target`, built now."""
        return [
            Target(item, group.type_name, group.label, name)
            for group in self.groups
            for item, name in zip(group.items, group.usernames, strict=True)
        ]


class Unread(enum.Enum):
    """Why a config is not read."""

    BAD_ROW = "bad row"  # its usage fields cannot be trusted (malformed meta)
    NO_PANEL = "no panel"  # no panel resolves
    NO_USERNAME = "no username"  # the panel would not know whom to report

    @property
    def outcome(self) -> str:
        """What the run counts it as: a bad row failed; the others are skipped."""
        return "failed" if self is Unread.BAD_ROW else "skipped"


@attrs.frozen
class UnreadConfig:
    """A config the run counts but does not read."""

    config: ResellerConfig
    why: Unread
    type_name: str
    label: str


@attrs.frozen
class SyncPlan:
    """The panel jobs, the configs not read, and how many configs the run covers."""

    jobs: list[PanelJob]
    unread: list[UnreadConfig]
    configs: int
    eylandoo_configs: int


def plan_sync(
    work: SyncWork, panels: PanelDirectory, panel_ids: frozenset[int] | None = None
) -> SyncPlan:
    """Group the active configs by resolved panel; with `panel_ids`, only those panels'."""
    jobs: dict[int, PanelJob] = {}
    # The panel and its type, label and name are the same for every config with the
    # same panel_id and type column: worked out once for each such pair, as its group.
    kinds: dict[tuple[int | None, str], _Kind] = {}
    groups: dict[tuple[int | None, str], TargetGroup] = {}
    unread: list[UnreadConfig] = []
    configs = eylandoo = 0
    for item in work.items:
        if item.status != "active":
            continue
        key = (item.panel_id, item.panel_type)
        kind = kinds.get(key)
        if kind is None:
            kind = kinds[key] = _kind(item, panels)
        panel, panel_type, label, type_name = kind
        if panel_ids is not None and (panel is None or panel.id not in panel_ids):
            continue  # another job of the fan-out owns this config
        configs += 1
        if item.problem:
            unread.append(UnreadConfig(item.config, Unread.BAD_ROW, item.panel_type, ""))
            continue
        if panel is None:
            unread.append(UnreadConfig(item.config, Unread.NO_PANEL, item.panel_type, ""))
            continue
        if panel_type is PanelType.EYLANDOO:
            eylandoo += 1
        username = panel_username(item, panel_type)
        if not username:
            unread.append(UnreadConfig(item.config, Unread.NO_USERNAME, type_name, label))
            continue
        group = groups.get(key)
        if group is None:
            group = groups[key] = _group_of(jobs, panel, type_name, label)
        group.items.append(item)
        group.usernames.append(username)
    return SyncPlan(list(jobs.values()), unread, configs, eylandoo)


def _group_of(jobs: dict[int, PanelJob], panel: Panel, type_name: str, label: str) -> TargetGroup:
    """The panel's group of configs read as `type_name` under `label`, made if new."""
    job = jobs.get(panel.id)
    if job is None:
        job = jobs[panel.id] = PanelJob(panel)
    for group in job.groups:
        if (group.type_name, group.label) == (type_name, label):
            return group
    group = TargetGroup(type_name, label)
    job.groups.append(group)
    return group


# A config's panel (None when none resolves), the type it is read as, its label and name.
_Kind = tuple[Panel | None, PanelType | None, str, str]


def _kind(item: SyncItem, panels: PanelDirectory) -> _Kind:
    """The panel a config resolves to, the type it is read as, its label and its name."""
    panel = resolve_panel(item, panels).panel
    if panel is None:
        return None, None, "", item.panel_type
    panel_type = effective_panel_type(item, panel)
    if panel_type is None:
        return panel, None, panel.type_name, panel.type_name
    return panel, panel_type, panel_type.label, panel_type.value
