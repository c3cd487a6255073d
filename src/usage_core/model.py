"""Value objects read from the billing database."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from urllib.parse import urlsplit, urlunsplit

import attrs

from usage_core.ledger import LedgerState


class PanelType(enum.StrEnum):
    """The panel types usage-sync knows.

    The first four are values of the app's `panels.panel_type`; the others are
    named by a panel row's `extra.usage_sync_panel_type` (see `Panel.type_name`).
    """

    EYLANDOO = "eylandoo"
    MARZBAN = "marzban"
    MARZNESHIN = "marzneshin"
    XUI = "xui"
    PASARGUARD = "pasarguard"
    HIDDIFY = "hiddify"
    REMNAWAVE = "remnawave"

    @property
    def label(self) -> str:
        """The name used in log lines, e.g. `Eylandoo`."""
        return _LABELS[self]


_LABELS = {
    PanelType.EYLANDOO: "Eylandoo",
    PanelType.MARZBAN: "Marzban",
    PanelType.MARZNESHIN: "Marzneshin",
    PanelType.XUI: "XUI",
    PanelType.PASARGUARD: "PasarGuard",
    PanelType.HIDDIFY: "Hiddify",
    PanelType.REMNAWAVE: "Remnawave",
}

# The key of a panel row's `extra` that names the panel's real type, for types
# the app's `panels.panel_type` (an enum on MySQL) cannot hold.
PANEL_TYPE_KEY = "usage_sync_panel_type"
# How much of an unknown type name a message repeats.
_TYPE_NAME_PREVIEW = 40


def panel_type_of(value: str) -> PanelType | None:
    """The supported panel type named by `value`, or None."""
    try:
        return PanelType(value)
    except ValueError:
        return None


def strip_userinfo(url: str) -> str:
    """`url` with any `user:password@` before its host removed, for logs and output."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@attrs.frozen
class Secret:
    """A credential that never shows itself in a repr, str or log line."""

    _value: str = attrs.field(repr=False, alias="value")

    def reveal(self) -> str:
        """The credential itself, for the one place that sends it to a panel."""
        return self._value

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)


def _frozen_mapping(value: Mapping[str, object] | None) -> Mapping[str, object]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen
class Panel:
    """A row of `panels`, with its credentials decrypted."""

    id: int
    name: str
    url: str
    panel_type: str
    username: str | None = None
    password: Secret | None = None
    api_token: Secret | None = None
    extra: Mapping[str, object] = attrs.field(factory=dict, converter=_frozen_mapping)
    is_active: bool = True
    # Why the panel cannot be used (e.g. a credential that does not decrypt), or None.
    problem: str | None = None

    @property
    def names_its_type(self) -> bool:
        """True when `extra.usage_sync_panel_type` is set: it, not `panel_type`, decides."""
        return self.extra.get(PANEL_TYPE_KEY) not in (None, "")

    @property
    def type_name(self) -> str:
        """The type whose API the panel speaks: `extra.usage_sync_panel_type`, else `panel_type`.

        The name in `extra` is read case-insensitively, spaces around it ignored.
        """
        if not self.names_its_type:
            return self.panel_type
        named = self.extra[PANEL_TYPE_KEY]
        return named.strip().lower() if isinstance(named, str) else repr(named)

    @property
    def kind(self) -> PanelType | None:
        """The supported type the panel speaks, or None (see `type_problem`)."""
        return panel_type_of(self.type_name)

    @property
    def type_problem(self) -> str | None:
        """Why no client can speak to the panel by its type, or None."""
        if self.kind is not None:
            return None
        # Escaped control characters can make a short name long: cut the repr too.
        name = repr(self.type_name[:_TYPE_NAME_PREVIEW])[: 2 * _TYPE_NAME_PREVIEW]
        if self.names_its_type:
            known = ", ".join(kind.value for kind in PanelType)
            return f"extra.{PANEL_TYPE_KEY} names an unknown panel type {name} (known: {known})"
        return f"unsupported panel type {name}"

    @property
    def display_url(self) -> str:
        """`url` without user-info (`https://user:pass@host` shows as `https://host`)."""
        return strip_userinfo(self.url)

    @property
    def verify_tls(self) -> bool:
        """False only when `extra.verify_tls` is false (for self-signed panels)."""
        flag = self.extra.get("verify_tls", True)
        if isinstance(flag, str):
            return flag.strip().lower() not in ("false", "0", "no", "off")
        return flag is not False and flag != 0

    def secrets(self) -> tuple[str, ...]:
        """Every credential value, so that log output can be scrubbed of them."""
        return tuple(s.reveal() for s in (self.password, self.api_token) if s)


@attrs.frozen
class ResellerConfig:
    """A row of `reseller_configs` with the usage fields from its `meta`."""

    id: int
    reseller_id: int
    status: str
    panel_type: str
    panel_id: int | None
    panel_user_id: str | None
    external_username: str | None
    usage_bytes: int
    traffic_limit_bytes: int
    settled_bytes: int = 0
    last_counter: int | None = None
    last_lifetime: int | None = None
    # Why the row's usage fields cannot be trusted (e.g. malformed meta), or None.
    problem: str | None = None

    @property
    def ledger(self) -> LedgerState:
        """The config's usage as a ledger state."""
        return LedgerState(
            self.usage_bytes, self.settled_bytes, self.last_counter, self.last_lifetime
        )


@attrs.frozen
class ResellerUsage:
    """A reseller's stored `traffic_used_bytes` and `admin_forgiven_bytes`."""

    id: int
    used_bytes: int
    forgiven_bytes: int = 0


@attrs.frozen
class LedgerSnapshot:
    """A config's ledger as read, with the store's token for a guarded write.

    `version` is opaque to the core: the store uses it to refuse a write when
    the row changed after it was read.
    """

    config_id: int
    state: LedgerState
    version: object = attrs.field(eq=False, repr=False)
    # The stored keys disagree with `state` (see `ledger.stored_state`): write
    # them back even when the counter brings no change.
    stale: bool = False

    @property
    def usage_bytes(self) -> int:
        """`usage_bytes` as read."""
        return self.state.usage_bytes

    @property
    def settled_bytes(self) -> int:
        """`settled_usage_bytes` as read."""
        return self.state.settled_bytes


@attrs.define(eq=False)
class SyncItem:
    """One non-deleted config of a synced reseller, with its ledger as read.

    A full sync holds one of these per config (a million of them on a large
    site), so it is one slotted record of plain values rather than a config,
    a ledger state and a snapshot; those are built from it on demand. Nothing
    changes it after the store builds it. It has the fields of a
    `ResellerConfig` that panel resolution reads, under the same names.

    Attributes:
        version: The store's token for a guarded write (see `LedgerSnapshot`).
        stale: The stored ledger keys disagree with the ledger (see `LedgerSnapshot`).
        problem: Why the row's usage fields cannot be trusted, or None.
    """

    id: int
    reseller_id: int
    status: str
    panel_type: str
    panel_id: int | None
    panel_user_id: str | None
    external_username: str | None
    traffic_limit_bytes: int
    usage_bytes: int
    settled_bytes: int
    last_counter: int | None
    last_lifetime: int | None
    version: object
    stale: bool = False
    problem: str | None = None

    @classmethod
    def of(cls, config: ResellerConfig, snapshot: LedgerSnapshot) -> SyncItem:
        """The item of a config and the snapshot of its ledger."""
        state = snapshot.state
        return cls(
            config.id,
            config.reseller_id,
            config.status,
            config.panel_type,
            config.panel_id,
            config.panel_user_id,
            config.external_username,
            config.traffic_limit_bytes,
            state.usage_bytes,
            state.settled_bytes,
            state.last_counter,
            state.last_lifetime,
            snapshot.version,
            snapshot.stale,
            config.problem,
        )

    @property
    def config_id(self) -> int:
        """The config's id, as a snapshot names it."""
        return self.id

    @property
    def total_bytes(self) -> int:
        """Usage that counts toward the quota: current plus settled."""
        return self.usage_bytes + self.settled_bytes

    @property
    def state(self) -> LedgerState:
        """The ledger as read."""
        return LedgerState(
            self.usage_bytes, self.settled_bytes, self.last_counter, self.last_lifetime
        )

    @property
    def snapshot(self) -> LedgerSnapshot:
        """The ledger as read, with the store's version token."""
        return LedgerSnapshot(self.id, self.state, self.version, stale=self.stale)

    @property
    def config(self) -> ResellerConfig:
        """The config as a value object."""
        return ResellerConfig(
            id=self.id,
            reseller_id=self.reseller_id,
            status=self.status,
            panel_type=self.panel_type,
            panel_id=self.panel_id,
            panel_user_id=self.panel_user_id,
            external_username=self.external_username,
            usage_bytes=self.usage_bytes,
            traffic_limit_bytes=self.traffic_limit_bytes,
            settled_bytes=self.settled_bytes,
            last_counter=self.last_counter,
            last_lifetime=self.last_lifetime,
            problem=self.problem,
        )


@attrs.frozen
class SyncWork:
    """Everything one full sync needs from the database, read in a few queries.

    Attributes:
        resellers: The active traffic resellers.
        items: Every non-deleted config of those resellers, any status; only
            the `active` ones are fetched, all of them count toward totals.
            Read once, as they are iterated (a store's rows may stream in).
    """

    resellers: list[ResellerUsage]
    items: Iterable[SyncItem]


@attrs.frozen
class ConfigFilter:
    """Configs with one of `panel_ids`, or with no panel_id and one of `panel_types`.

    With `outside`, every other config instead: those no job of a fan-out read.
    """

    panel_ids: frozenset[int]
    unassigned_types: frozenset[str] = frozenset()
    outside: bool = False

    def matches(self, config: ResellerConfig) -> bool:
        """True for a config this filter selects."""
        if config.panel_id is not None:
            inside = config.panel_id in self.panel_ids
        else:
            inside = config.panel_type in self.unassigned_types
        return inside is not self.outside

    def complement(self) -> ConfigFilter:
        """The filter of every config this one does not select."""
        return attrs.evolve(self, outside=not self.outside)
