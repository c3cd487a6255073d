"""The enforcement decision: which resellers and configs change state, and why. Pure.

From a reseller's quota, usage, time window and status, and each of its
configs' limit, usage, expiry, status and markers, `decide` returns what must
change. The same grace serves suspension and re-enabling, with hysteresis:
a reseller is suspended at `used >= limit + grace` and re-activated only once
`used < limit` (and its window is valid), so usage inside `[limit, limit +
grace)` never flaps. Only what enforcement disabled (the app's markers) is
re-enabled; a reseller suspended by a person is never re-activated.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

import attrs

from usage_core.enforcement.settings import EnforcementSettings, Grace
from usage_core.model import ResellerConfig
from usage_core.quota import grace_limit


class Reason(enum.StrEnum):
    """The reasons the app's own records use."""

    QUOTA = "reseller_quota_exhausted"
    WINDOW = "reseller_window_expired"
    RECOVERED = "reseller_recovered"
    TRAFFIC_EXCEEDED = "traffic_exceeded"
    TIME_EXPIRED = "time_expired"


class ResellerAction(enum.StrEnum):
    """A reseller's change of status."""

    SUSPEND = "suspend"
    ACTIVATE = "activate"


class ConfigAction(enum.StrEnum):
    """A config's change of status."""

    DISABLE = "disable"  # status `disabled`
    EXPIRE = "expire"  # status `expired`
    ENABLE = "enable"  # status `active`

    @property
    def status(self) -> str:
        """The config's local status after the change."""
        return {"disable": "disabled", "expire": "expired", "enable": "active"}[self.value]

    @property
    def connects(self) -> bool:
        """Whether the panel user may connect afterwards."""
        return self is ConfigAction.ENABLE


@attrs.frozen
class Markers:
    """The app's markers in a config's `meta` saying it went down with its reseller.

    Attributes:
        by_quota: `disabled_by_reseller_suspension` is truthy.
        by_window: `suspended_by_time_window` is truthy.
        reseller_id: `disabled_by_reseller_id`, when set.
    """

    by_quota: bool = False
    by_window: bool = False
    reseller_id: int | None = None

    @property
    def any(self) -> bool:
        """True when the config was disabled with its reseller."""
        return self.by_quota or self.by_window


@attrs.frozen
class RemoteOp:
    """A change still to be made on the panel: the config's outbox entry.

    Attributes:
        connects: The state the panel user must end in (True: enabled).
        reason: Why (the transition's reason).
        attempts: Requests tried so far, over every run.
        last_error: The last failure, or None.
        event_id: The `reseller_config_events` row of the transition.
        audit_id: The `audit_logs` row of the transition.
        queued_at: When the transition happened (ISO 8601, app time).
    """

    connects: bool
    reason: str
    attempts: int = 0
    last_error: str | None = None
    event_id: int | None = None
    audit_id: int | None = None
    queued_at: str = ""


@attrs.frozen
class EnforcedConfig:
    """A config as enforcement reads it."""

    config: ResellerConfig
    expires_at: datetime | None
    markers: Markers = Markers()
    pending: RemoteOp | None = None

    @property
    def id(self) -> int:
        """The config's id."""
        return self.config.id

    @property
    def status(self) -> str:
        """`active`, `disabled`, `expired` or `deleted`."""
        return self.config.status


class Suspension(enum.Enum):
    """Who suspended a suspended reseller, as its latest suspension record says."""

    AUTOMATIC = "automatic"  # quota or window: enforcement may re-activate it
    MANUAL = "manual"  # anything else, or no record: never re-activated here


@attrs.frozen
class ResellerState:
    """A reseller as enforcement reads it (times are naive, in the app's timezone)."""

    id: int
    type: str
    status: str
    total_bytes: int | None
    used_bytes: int
    window_starts_at: datetime | None = None
    window_ends_at: datetime | None = None
    suspension: Suspension | None = None


@attrs.frozen
class ConfigChange:
    """One config's transition."""

    config: EnforcedConfig
    action: ConfigAction
    reason: Reason


@attrs.frozen
class Decision:
    """What changes for one reseller: its own status (or None) and its configs'."""

    reseller: ResellerState
    action: ResellerAction | None
    reason: Reason | None
    configs: tuple[ConfigChange, ...] = ()


def start_of_day(moment: datetime) -> datetime:
    """Midnight at the start of `moment`'s calendar day."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def window_valid(starts: datetime | None, ends: datetime | None, now: datetime) -> bool:
    """The app's `isWindowValid`: no end is valid; an end without a start is not;
    otherwise `starts <= now < start of the end's day`."""
    if ends is None:
        return True
    if starts is None:
        return False
    return starts <= now < start_of_day(ends)


def expired_by_day(expires_at: datetime | None, now: datetime) -> bool:
    """The app's `isExpiredByTime`: from midnight of the expiry day on."""
    return expires_at is not None and now >= start_of_day(expires_at)


def _over(used: int, limit: int, grace: Grace) -> bool:
    return used >= grace_limit(limit, grace.percent, grace.floor_bytes)


def _recoverable(config: EnforcedConfig, reseller_id: int) -> bool:
    """Disabled with its reseller (by quota or window), by this reseller."""
    markers = config.markers
    owner_ok = markers.reseller_id is None or markers.reseller_id == reseller_id
    return config.status == "disabled" and markers.any and owner_ok


def _config_rules(
    config: EnforcedConfig, settings: EnforcementSettings, now: datetime
) -> ConfigChange | None:
    """Per-config limits, applied only when `reseller.allow_config_overrun` is false."""
    if settings.allow_config_overrun or config.status != "active":
        return None
    own = config.config
    if _over(own.usage_bytes, own.traffic_limit_bytes, settings.config_grace):
        return ConfigChange(config, ConfigAction.DISABLE, Reason.TRAFFIC_EXCEEDED)
    if expired_by_day(config.expires_at, now):
        return ConfigChange(config, ConfigAction.EXPIRE, Reason.TIME_EXPIRED)
    return None


def _re_enabled(
    reseller: ResellerState,
    configs: Sequence[EnforcedConfig],
    settings: EnforcementSettings,
    now: datetime,
) -> list[ConfigChange]:
    """The configs enforcement disabled with the reseller, back on.

    One that its own limits would stop again at once (overrun disallowed) stays
    as it is rather than flap.
    """
    changes = []
    for config in configs:
        if not _recoverable(config, reseller.id):
            continue
        as_active = attrs.evolve(config, config=attrs.evolve(config.config, status="active"))
        if _config_rules(as_active, settings, now) is None:
            changes.append(ConfigChange(config, ConfigAction.ENABLE, Reason.RECOVERED))
    return changes


def reseller_may_change(
    reseller: ResellerState, settings: EnforcementSettings, now: datetime
) -> bool:
    """Whether the reseller's own status changes now: only then are all its configs needed."""
    if reseller.type != "traffic" or (
        reseller.total_bytes is None and reseller.window_ends_at is None
    ):
        return False
    total = reseller.total_bytes
    over = total is not None and _over(reseller.used_bytes, total, settings.reseller_grace)
    within = total is not None and reseller.used_bytes < total
    window_ok = window_valid(reseller.window_starts_at, reseller.window_ends_at, now)
    if reseller.status == "active":
        return over or not window_ok
    automatic = reseller.suspension is Suspension.AUTOMATIC
    return reseller.status == "suspended" and automatic and within and window_ok


def decide(
    reseller: ResellerState,
    configs: Sequence[EnforcedConfig],
    settings: EnforcementSettings,
    now: datetime,
) -> Decision | None:
    """What must change for `reseller` and its configs at `now` (naive app time); None: nothing.

    Only `traffic` resellers are enforced (`wallet` ones are the wallet
    billing's business). A reseller without a quota (`traffic_total_bytes`
    NULL) is never suspended or re-activated for quota.
    """
    if reseller.type != "traffic":
        return None
    total = reseller.total_bytes
    over = total is not None and _over(reseller.used_bytes, total, settings.reseller_grace)
    within = total is not None and reseller.used_bytes < total
    window_ok = window_valid(reseller.window_starts_at, reseller.window_ends_at, now)
    if reseller.status == "active":
        if over or not window_ok:
            reason = Reason.QUOTA if over else Reason.WINDOW
            down = tuple(
                ConfigChange(c, ConfigAction.DISABLE, reason)
                for c in configs
                if c.status == "active"
            )
            return Decision(reseller, ResellerAction.SUSPEND, reason, down)
        # Configs left disabled when the reseller was re-activated elsewhere come back.
        changes = _re_enabled(reseller, configs, settings, now) if within else []
        changes += _own_limits(configs, settings, now)
        return Decision(reseller, None, None, tuple(changes)) if changes else None
    automatic = reseller.suspension is Suspension.AUTOMATIC
    if reseller.status == "suspended" and automatic and within and window_ok:
        up = _re_enabled(reseller, configs, settings, now) + _own_limits(configs, settings, now)
        return Decision(reseller, ResellerAction.ACTIVATE, Reason.RECOVERED, tuple(up))
    return None


def _own_limits(
    configs: Sequence[EnforcedConfig], settings: EnforcementSettings, now: datetime
) -> list[ConfigChange]:
    """The active configs their own limits stop (when overrun is disallowed)."""
    changes = (_config_rules(config, settings, now) for config in configs)
    return [change for change in changes if change is not None]
