"""The plan of a full sync: which panel reads which configs, and which configs are not read.

Pure: the work read from the database and the panels go in, the plan comes out.
"""

from __future__ import annotations

import enum
from array import array

import attrs

from usage_core.ledger import LedgerState
from usage_core.model import Panel, PanelType, ResellerConfig, SyncItem, SyncWork
from usage_core.targets import PanelDirectory, effective_panel_type, panel_username, resolve_panel

# A counter or lifetime the ledger has not got yet, in a column of numbers: no
# byte count is negative.
NO_BYTES = -1
_INT64 = "q"
_OUT_OF_RANGE = "usage_bytes is out of the 64-bit range"


@attrs.define(eq=False)
class Target:
    """One config to read from its panel, under the name the panel knows it by."""

    config_id: int
    type_name: str
    label: str
    username: str


@attrs.frozen
class ReadRow:
    """A config's ledger as a full sync read it: what its write and its log lines need.

    Built from a `TargetGroup`'s columns for the rows a reading moves.
    """

    config_id: int
    reseller_id: int
    usage_bytes: int
    settled_bytes: int
    last_counter: int | None
    last_lifetime: int | None
    version: object
    stale: bool

    @property
    def state(self) -> LedgerState:
        """The ledger as read."""
        return LedgerState(
            self.usage_bytes, self.settled_bytes, self.last_counter, self.last_lifetime
        )


def _int64s() -> array[int]:
    return array(_INT64)


@attrs.define(eq=False)
class TargetGroup:
    """A panel's configs read under one type and label: their ledgers as read, and names.

    A full sync plans a million configs, and holds them while the panels answer:
    kept as columns of plain numbers (a few bytes a config) rather than an
    object for each. `row(i)` builds the record of one when a reading moves it.
    """

    type_name: str
    label: str
    usernames: list[str] = attrs.field(factory=list)
    ids: array[int] = attrs.field(factory=_int64s)
    reseller_ids: array[int] = attrs.field(factory=_int64s)
    usage: array[int] = attrs.field(factory=_int64s)
    settled: array[int] = attrs.field(factory=_int64s)
    # `NO_BYTES` for None.
    counters: array[int] = attrs.field(factory=_int64s)
    lifetimes: array[int] = attrs.field(factory=_int64s)
    versions: list[object] = attrs.field(factory=list)
    stale: bytearray = attrs.field(factory=bytearray)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, item: SyncItem, username: str) -> bool:
        """Keep `item` under `username`; False, keeping nothing, when a number outgrows 64 bits."""
        try:
            # The only column read from the database unchecked: appended first.
            self.usage.append(item.usage_bytes)
        except OverflowError:
            return False
        self.ids.append(item.id)
        self.reseller_ids.append(item.reseller_id)
        self.settled.append(item.settled_bytes)
        counter, lifetime = item.last_counter, item.last_lifetime
        self.counters.append(NO_BYTES if counter is None else counter)
        self.lifetimes.append(NO_BYTES if lifetime is None else lifetime)
        self.versions.append(item.version)
        self.stale.append(item.stale)
        self.usernames.append(username)
        return True

    def row(self, index: int) -> ReadRow:
        """The ledger as read of the config at `index`."""
        counter, lifetime = self.counters[index], self.lifetimes[index]
        return ReadRow(
            self.ids[index],
            self.reseller_ids[index],
            self.usage[index],
            self.settled[index],
            None if counter == NO_BYTES else counter,
            None if lifetime == NO_BYTES else lifetime,
            self.versions[index],
            bool(self.stale[index]),
        )


@attrs.define
class PanelJob:
    """One panel and the configs read from it in one session."""

    panel: Panel
    groups: list[TargetGroup] = attrs.field(factory=list)

    @property
    def size(self) -> int:
        """How many configs are read from the panel."""
        return sum(len(group) for group in self.groups)

    @property
    def usernames(self) -> list[str]:
        """The names of every config read from the panel, as the panel knows them."""
        return [name for group in self.groups for name in group.usernames]

    @property
    def targets(self) -> list[Target]:
        """Every config read from the panel as a `Target`, built now."""
        return [
            Target(config_id, group.type_name, group.label, name)
            for group in self.groups
            for config_id, name in zip(group.ids, group.usernames, strict=True)
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
        if not group.add(item, username):
            config = attrs.evolve(item.config, problem=_OUT_OF_RANGE)
            unread.append(UnreadConfig(config, Unread.BAD_ROW, item.panel_type, ""))
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
