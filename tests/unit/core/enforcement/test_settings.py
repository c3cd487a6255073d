"""The enforcement settings: the app's keys, defaults and casts, and no silent 0 grace."""

import logging

import pytest

from tests.fakes import InMemorySettings
from usage_core.enforcement.settings import (
    ALLOW_CONFIG_OVERRUN,
    CONFIG_GRACE_BYTES,
    ENFORCEMENT_MODE,
    RESELLER_GRACE_BYTES,
    RESELLER_GRACE_PERCENT,
    EnforcementMode,
    EnforcementSettings,
    Grace,
    read_enforcement_settings,
)


def read(values: dict[str, str]) -> EnforcementSettings:
    """The settings read from a table holding `values`."""
    return read_enforcement_settings(InMemorySettings(values))


class TestEnforcementSettings:
    """Each key is read as the app reads it; a bad value gets the default and a warning."""

    def test_defaults_when_missing(self) -> None:
        """No rows: 2 % / 50 MiB grace, overrun allowed, enforcement on."""
        assert read({}) == EnforcementSettings(
            Grace(2.0, 52_428_800), Grace(2.0, 52_428_800), True, EnforcementMode.ON
        )

    def test_stored_values(self) -> None:
        """Stored strings are cast: floats, whole bytes, flags, the mode."""
        settings = read(
            {
                RESELLER_GRACE_PERCENT: " 1.5 ",
                RESELLER_GRACE_BYTES: "10485760",
                CONFIG_GRACE_BYTES: "0",
                ALLOW_CONFIG_OVERRUN: "false",
                ENFORCEMENT_MODE: "DRY_RUN",
            }
        )
        assert settings.reseller_grace == Grace(1.5, 10_485_760)
        assert settings.config_grace.floor_bytes == 0
        assert settings.allow_config_overrun is False
        assert settings.mode is EnforcementMode.DRY_RUN

    @pytest.mark.parametrize("raw", ["", "  ", "abc", "-2", "nan", "2%"])
    def test_garbage_grace_is_the_default_not_zero(
        self, raw: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An empty or garbage grace keeps the default (the app would use 0), with a warning."""
        with caplog.at_level(logging.WARNING):
            settings = read({RESELLER_GRACE_PERCENT: raw, RESELLER_GRACE_BYTES: raw})
        assert settings.reseller_grace == Grace()
        assert any(RESELLER_GRACE_BYTES in r.getMessage() for r in caplog.records)

    @pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("0", False)])
    def test_flags(self, raw: str, expected: bool) -> None:
        """true/1 and false/0, in any case."""
        assert read({ALLOW_CONFIG_OVERRUN: raw}).allow_config_overrun is expected

    def test_unknown_mode_is_on(self, caplog: pytest.LogCaptureFixture) -> None:
        """An unknown mode enforces, as the original always did, and says so."""
        with caplog.at_level(logging.WARNING):
            assert read({ENFORCEMENT_MODE: "maybe"}).mode is EnforcementMode.ON
        assert any(ENFORCEMENT_MODE in r.getMessage() for r in caplog.records)
