"""The enforcement decision: grace, hysteresis, reasons, markers, calendar days."""

from datetime import datetime, timedelta

import attrs
from hypothesis import given
from hypothesis import strategies as st

from usage_core.enforcement.rules import (
    ConfigAction,
    Decision,
    EnforcedConfig,
    Markers,
    Reason,
    ResellerAction,
    ResellerState,
    Suspension,
    decide,
    expired_by_day,
    window_valid,
)
from usage_core.enforcement.settings import EnforcementSettings, Grace
from usage_core.model import ResellerConfig
from usage_core.quota import grace_limit

GIB = 1024**3
MIB = 1024**2
NOW = datetime(2025, 11, 3, 12, 0)  # naive app time (Asia/Tehran in the app)
SETTINGS = EnforcementSettings()
STRICT = EnforcementSettings(allow_config_overrun=False)


def reseller(used: int, total: int | None = GIB, **kw: object) -> ResellerState:
    """An active traffic reseller with `used` of `total` bytes and no window."""
    return attrs.evolve(ResellerState(7, "traffic", "active", total, used), **kw)


def config(config_id: int, status: str = "active", **kw: object) -> EnforcedConfig:
    """A config of reseller 7 on panel 1."""
    markers = kw.pop("markers", Markers())
    expires_at = kw.pop("expires_at", datetime(2030, 1, 1))
    base = ResellerConfig(
        id=config_id,
        reseller_id=7,
        status=status,
        panel_type="marzban",
        panel_id=1,
        panel_user_id=f"u{config_id}",
        external_username=f"u{config_id}",
        usage_bytes=0,
        traffic_limit_bytes=GIB,
    )
    return EnforcedConfig(attrs.evolve(base, **kw), expires_at, markers)


OURS = Markers(by_quota=True, reseller_id=7)


def suspended(used: int, total: int | None = GIB, **kw: object) -> ResellerState:
    """A suspended reseller (by enforcement unless told otherwise)."""
    return reseller(
        used, total, **({"status": "suspended", "suspension": Suspension.AUTOMATIC} | kw)
    )


def actions(decision: Decision | None) -> dict[int, ConfigAction]:
    """Config id → action of a decision."""
    return {} if decision is None else {c.config.id: c.action for c in decision.configs}


class TestGraceAndReasons:
    """Suspension at limit + grace, with the quota reason winning over the window."""

    def test_grace_examples_from_the_app(self) -> None:
        """1 GiB gets the 50 MiB floor; 10 GiB gets 2 %; the crossover is 2,621,440,000."""
        assert grace_limit(GIB, 2.0, 50 * MIB) == 1_126_170_624
        assert grace_limit(10 * GIB, 2.0, 50 * MIB) == 10_952_166_604

    def test_exactly_at_the_limit_stays_active(self) -> None:
        """Usage equal to the quota is allowed; so is anything below limit + grace."""
        assert decide(reseller(GIB), [config(1)], SETTINGS, NOW) is None
        assert decide(reseller(1_126_170_623), [config(1)], SETTINGS, NOW) is None

    def test_over_limit_plus_grace_suspends_and_disables_every_active_config(self) -> None:
        """At limit + grace the reseller is suspended and its active configs disabled."""
        configs = [config(1), config(2, "disabled"), config(3, "expired"), config(4)]
        decision = decide(reseller(1_126_170_624), configs, SETTINGS, NOW)
        assert decision is not None
        assert (decision.action, decision.reason) == (ResellerAction.SUSPEND, Reason.QUOTA)
        assert actions(decision) == {1: ConfigAction.DISABLE, 4: ConfigAction.DISABLE}
        assert {c.reason for c in decision.configs} == {Reason.QUOTA}

    def test_own_grace_settings_apply(self) -> None:
        """A 1 % / 10 MiB grace suspends at 1 GiB + 11 MiB (the app's own test)."""
        tight = EnforcementSettings(reseller_grace=Grace(1.0, 10 * MIB))
        decision = decide(reseller(GIB + 11 * MIB), [config(1)], tight, NOW)
        assert decision is not None
        assert decision.action is ResellerAction.SUSPEND

    def test_quota_wins_over_the_window(self) -> None:
        """Over quota with an ended window: the reason is the quota, on every config too."""
        ended = reseller(2 * GIB, window_starts_at=datetime(2025, 1, 1), window_ends_at=NOW)
        decision = decide(ended, [config(1)], SETTINGS, NOW)
        assert decision is not None
        assert decision.reason is Reason.QUOTA
        assert decision.configs[0].reason is Reason.QUOTA

    def test_window_end_alone_suspends(self) -> None:
        """Within quota but past the window's last day: suspended for the window."""
        ended = reseller(0, window_starts_at=datetime(2025, 1, 1), window_ends_at=NOW)
        decision = decide(ended, [config(1)], SETTINGS, NOW)
        assert decision is not None
        assert decision.reason is Reason.WINDOW

    def test_no_quota_is_never_enforced_for_quota(self) -> None:
        """A NULL `traffic_total_bytes` neither suspends nor re-activates."""
        assert decide(reseller(10 * GIB, None), [config(1)], SETTINGS, NOW) is None
        assert (
            decide(suspended(0, None), [config(1, "disabled", markers=OURS)], SETTINGS, NOW) is None
        )

    def test_wallet_and_plan_resellers_are_not_enforced(self) -> None:
        """Only `traffic` resellers are enforced."""
        for kind in ("wallet", "plan"):
            assert decide(reseller(10 * GIB, type=kind), [config(1)], SETTINGS, NOW) is None


class TestReEnabling:
    """Re-activation below the limit itself; only what enforcement disabled comes back."""

    def test_back_below_the_limit_re_enables_only_marked_configs(self) -> None:
        """Marked configs come back; manual, expired and unmarked ones stay."""
        configs = [
            config(1, "disabled", markers=OURS),
            config(2, "disabled", markers=Markers(by_window=True)),
            config(3, "disabled"),
            config(4, "expired", markers=OURS),
            config(5, "disabled", markers=Markers(by_quota=True, reseller_id=99)),
        ]
        decision = decide(suspended(GIB - 1), configs, SETTINGS, NOW)
        assert decision is not None
        assert (decision.action, decision.reason) == (ResellerAction.ACTIVATE, Reason.RECOVERED)
        assert actions(decision) == {1: ConfigAction.ENABLE, 2: ConfigAction.ENABLE}

    def test_inside_the_grace_band_stays_suspended(self) -> None:
        """Between the limit and limit + grace a suspended reseller stays suspended."""
        assert decide(suspended(GIB), [config(1, "disabled", markers=OURS)], SETTINGS, NOW) is None

    def test_a_person_s_suspension_is_never_undone(self) -> None:
        """A reseller suspended by hand stays suspended, whatever its usage."""
        manual = suspended(0, suspension=Suspension.MANUAL)
        assert decide(manual, [config(1, "disabled", markers=OURS)], SETTINGS, NOW) is None

    def test_an_invalid_window_keeps_it_suspended(self) -> None:
        """Re-activation needs a valid window as well as usage below the limit."""
        ended = suspended(0, window_starts_at=datetime(2025, 1, 1), window_ends_at=NOW)
        assert decide(ended, [config(1, "disabled", markers=OURS)], SETTINGS, NOW) is None

    def test_marked_configs_of_an_active_reseller_come_back(self) -> None:
        """A reseller re-activated elsewhere gets its marked configs back once below the limit."""
        decision = decide(reseller(0), [config(1, "disabled", markers=OURS)], SETTINGS, NOW)
        assert decision is not None
        assert decision.action is None
        assert actions(decision) == {1: ConfigAction.ENABLE}

    def test_a_config_its_own_limits_would_stop_is_not_re_enabled(self) -> None:
        """With overrun disallowed, a marked config past its own expiry stays down."""
        stale = config(1, "disabled", markers=OURS, expires_at=datetime(2025, 11, 1))
        decision = decide(suspended(0), [stale], STRICT, NOW)
        assert decision is not None
        assert actions(decision) == {}


class TestConfigLimits:
    """Per-config traffic and expiry, enforced only when overrun is disallowed."""

    def test_overrun_allowed_by_default(self) -> None:
        """With the default setting a config over its own limit stays active."""
        over = config(1, usage_bytes=2 * GIB)
        assert decide(reseller(0, 100 * GIB), [over], SETTINGS, NOW) is None

    def test_traffic_over_limit_plus_grace_disables(self) -> None:
        """At its own limit + grace a config is disabled for traffic_exceeded."""
        at_limit = config(1, usage_bytes=GIB)
        over = config(2, usage_bytes=GIB + 51 * MIB)
        decision = decide(reseller(0, 100 * GIB), [at_limit, over], STRICT, NOW)
        assert decision is not None
        assert actions(decision) == {2: ConfigAction.DISABLE}
        assert decision.configs[0].reason is Reason.TRAFFIC_EXCEEDED

    def test_expiry_day_expires(self) -> None:
        """From midnight of its expiry day a config is expired, with no grace."""
        due = config(1, expires_at=datetime(2025, 11, 3, 14, 30))
        decision = decide(reseller(0, 100 * GIB), [due], STRICT, NOW)
        assert decision is not None
        assert actions(decision) == {1: ConfigAction.EXPIRE}
        assert decision.configs[0].reason is Reason.TIME_EXPIRED


class TestCalendarDays:
    """Windows and expiry by calendar day in the app's timezone (the Tehran tests)."""

    def test_expiry_at_midnight(self) -> None:
        """23:59:59 the day before is not expired; 00:00:00 and 00:00:01 are."""
        expires = datetime(2025, 11, 3)
        assert not expired_by_day(expires, datetime(2025, 11, 2, 23, 59, 59))
        assert expired_by_day(expires, datetime(2025, 11, 3))
        assert expired_by_day(expires, datetime(2025, 11, 3, 0, 0, 1))

    def test_window_end_at_midnight(self) -> None:
        """A window ending on a day is valid until that day's midnight, time of day or not."""
        start = datetime(2025, 10, 1)
        for end in (datetime(2025, 11, 3), datetime(2025, 11, 3, 18, 0)):
            assert window_valid(start, end, datetime(2025, 11, 2, 23, 59, 59))
            assert not window_valid(start, end, datetime(2025, 11, 3))

    def test_window_edges(self) -> None:
        """No end is valid; an end without a start, or a future start, is not."""
        assert window_valid(None, None, NOW)
        assert not window_valid(None, datetime(2030, 1, 1), NOW)
        assert not window_valid(NOW + timedelta(hours=1), datetime(2030, 1, 1), NOW)


statuses = st.sampled_from(["active", "disabled", "expired"])
marker_sets = st.sampled_from([Markers(), OURS, Markers(by_window=True, reseller_id=7)])
config_lists = st.lists(st.tuples(statuses, marker_sets, st.integers(0, 3 * GIB)), max_size=6).map(
    lambda rows: [
        config(i, status, markers=markers, usage_bytes=usage)
        for i, (status, markers, usage) in enumerate(rows, 1)
    ]
)


def applied(state: ResellerState, configs: list[EnforcedConfig], decision: Decision | None):
    """The reseller and configs after a decision is carried out (as the store does)."""
    if decision is None:
        return state, configs
    if decision.action is ResellerAction.SUSPEND:
        state = attrs.evolve(state, status="suspended", suspension=Suspension.AUTOMATIC)
    elif decision.action is ResellerAction.ACTIVATE:
        state = attrs.evolve(state, status="active", suspension=None)
    changes = {c.config.id: c for c in decision.configs}
    after = []
    for before in configs:
        item = before
        change = changes.get(item.id)
        if change is not None:
            markers = item.markers
            if change.action is ConfigAction.ENABLE:
                markers = Markers()
            elif change.reason is Reason.QUOTA:
                markers = OURS
            elif change.reason is Reason.WINDOW:
                markers = Markers(by_window=True, reseller_id=7)
            item = attrs.evolve(
                item,
                config=attrs.evolve(item.config, status=change.action.status),
                markers=markers,
            )
        after.append(item)
    return state, after


class TestProperties:
    """No flapping, no re-enabling above the limit, and a decision carried out is final."""

    @given(st.lists(st.integers(GIB, grace_limit(GIB, 2.0, 50 * MIB) - 1), max_size=20))
    def test_no_flapping_inside_the_grace_band(self, usages: list[int]) -> None:
        """Usage moving anywhere in [limit, limit + grace) never changes the reseller's status."""
        for start in (reseller(GIB), suspended(GIB)):
            state, configs = start, [config(1, markers=OURS)]
            for used in usages:
                state = attrs.evolve(state, used_bytes=used)
                decision = decide(state, configs, SETTINGS, NOW)
                assert decision is None or decision.action is None
                state, configs = applied(state, configs, decision)
            assert state.status == start.status

    @given(st.integers(GIB, 10 * GIB), config_lists, st.sampled_from([SETTINGS, STRICT]))
    def test_never_re_enabled_at_or_above_the_limit(
        self, used: int, configs: list[EnforcedConfig], settings: EnforcementSettings
    ) -> None:
        """At or above its limit, no reseller is re-activated and no config re-enabled."""
        for state in (reseller(used), suspended(used)):
            decision = decide(state, configs, settings, NOW)
            if decision is not None:
                assert decision.action is not ResellerAction.ACTIVATE
                assert ConfigAction.ENABLE not in actions(decision).values()

    @given(st.integers(0, 3 * GIB), config_lists, st.sampled_from([SETTINGS, STRICT]))
    def test_only_marked_disabled_configs_are_re_enabled(
        self, used: int, configs: list[EnforcedConfig], settings: EnforcementSettings
    ) -> None:
        """Every re-enabled config was disabled and carried the reseller's marker."""
        for state in (reseller(used), suspended(used)):
            decision = decide(state, configs, settings, NOW)
            for change in decision.configs if decision else ():
                if change.action is ConfigAction.ENABLE:
                    assert change.config.status == "disabled"
                    assert change.config.markers.any

    @given(
        st.integers(0, 3 * GIB),
        config_lists,
        st.sampled_from([SETTINGS, STRICT]),
        st.sampled_from(["active", "suspended"]),
    )
    def test_a_decision_carried_out_decides_nothing_more(
        self, used: int, configs: list[EnforcedConfig], settings: EnforcementSettings, status: str
    ) -> None:
        """Deciding again on the state a decision left changes nothing (idempotent)."""
        state = reseller(used) if status == "active" else suspended(used)
        decision = decide(state, configs, settings, NOW)
        state, configs = applied(state, configs, decision)
        assert decide(state, configs, settings, NOW) is None
