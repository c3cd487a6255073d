"""Settings from the environment."""

import base64

import pytest

from usage_core.errors import ConfigurationError
from usage_entrypoints.settings import DEFAULT_DATABASE_URL, Settings


class TestSettings:
    """`Settings.from_env` reads `USAGE_SYNC_*` and refuses unusable values."""

    def test_defaults(self) -> None:
        """With nothing set: the SQLite file, UTC, text logs to stderr."""
        settings = Settings.from_env({})
        assert settings.database_url == DEFAULT_DATABASE_URL
        assert (settings.timezone, settings.log_format, settings.log_file) == ("UTC", "text", None)
        assert settings.app_key is None

    def test_values(self) -> None:
        """Each variable lands in its field; the app key is kept secret."""
        settings = Settings.from_env(
            {
                "USAGE_SYNC_DATABASE_URL": "postgresql://db/app",
                "USAGE_SYNC_TIMEZONE": "Asia/Tehran",
                "USAGE_SYNC_APP_KEY": "base64:" + base64.b64encode(b"k" * 32).decode(),
                "USAGE_SYNC_LOG_FORMAT": "JSON",
                "USAGE_SYNC_LOG_FILE": "/tmp/x.log",
            }
        )
        assert settings.tz.key == "Asia/Tehran"
        assert settings.log_format == "json"
        assert settings.app_key is not None
        assert "a2tr" not in repr(settings)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("TIMEZONE", "Mars/Olympus"),
            ("LOG_FORMAT", "xml"),
            ("HTTP_TIMEOUT", "soon"),
            ("PANEL_BUDGET", "9999"),
            ("PANEL_CONCURRENCY", "0"),
            ("FANOUT", "reseller"),
            ("APP_KEY", "base64:abc"),
            ("APP_KEY", "too-short"),
        ],
    )
    def test_bad_values(self, name: str, value: str) -> None:
        """An unusable value is a ConfigurationError naming the variable."""
        with pytest.raises(ConfigurationError, match=f"USAGE_SYNC_{name}"):
            Settings.from_env({f"USAGE_SYNC_{name}": value})
