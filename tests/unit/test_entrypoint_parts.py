"""Settings from the environment, log formatting and the sync-one text."""

import io
import json
import logging

import pytest

from tests.unit.test_sync_one import GIB_READING, config, world
from usage_core.errors import ConfigurationError
from usage_core.log import ctx
from usage_entrypoints.logs import configure_logging, scrub
from usage_entrypoints.settings import DEFAULT_DATABASE_URL, Settings
from usage_entrypoints.sync_one_output import fmt_bytes, header_lines, result_lines

SEED_OUTPUT = """\
=== Syncing Usage for Config #123 ===

📋 Config Information:
  ID: 123
  Reseller ID: 45
  Status: active
  Panel Type: eylandoo
  Panel ID: 10
  Panel User ID: test_user_123
  External Username: test_user_123
  Current Usage: 524288000 bytes (500.00 MB)
  Traffic Limit: 10737418240 bytes (10240.00 MB)

🔧 Panel Information:
  Panel Name: Eylandoo Production
  Panel Type: eylandoo
  URL: https://panel.example.com

📡 Fetching usage from panel...

✅ Successfully fetched usage from panel
📊 Usage: 1073741824 bytes (1024.00 MB)

💾 Updated config usage_bytes in database
  Previous: 524288000 bytes (500.00 MB)
  Current:  1073741824 bytes (1024.00 MB)
  Delta:    549453824 bytes (524.00 MB)

✅ Sync completed successfully"""


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
                "USAGE_SYNC_APP_KEY": "base64:abc",
                "USAGE_SYNC_LOG_FORMAT": "JSON",
                "USAGE_SYNC_LOG_FILE": "/tmp/x.log",
            }
        )
        assert settings.tz.key == "Asia/Tehran"
        assert settings.log_format == "json"
        assert settings.app_key is not None
        assert "abc" not in repr(settings)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("TIMEZONE", "Mars/Olympus"),
            ("LOG_FORMAT", "xml"),
            ("HTTP_TIMEOUT", "soon"),
            ("PANEL_BUDGET", "9999"),
            ("PANEL_CONCURRENCY", "0"),
            ("FANOUT", "reseller"),
        ],
    )
    def test_bad_values(self, name: str, value: str) -> None:
        """An unusable value is a ConfigurationError naming the variable."""
        with pytest.raises(ConfigurationError, match=f"USAGE_SYNC_{name}"):
            Settings.from_env({f"USAGE_SYNC_{name}": value})


class TestLogs:
    """Log lines keep the original wording and never show credentials."""

    def test_text_line_carries_message_and_context(self) -> None:
        """A record renders as `[time] usage-sync.LEVEL: message {context}`."""
        stream = io.StringIO()
        configure_logging(stream=stream)
        logging.getLogger("usage_core.x").info(
            "Eylandoo usage for user %s: %s bytes", "u1", 5, extra=ctx(config_id=9)
        )
        line = stream.getvalue().strip()
        assert "usage-sync.INFO: Eylandoo usage for user u1: 5 bytes" in line
        assert line.endswith('{"config_id": 9}')

    def test_json_line(self) -> None:
        """The JSON format is one object per line with the context as a mapping."""
        stream = io.StringIO()
        configure_logging(log_format="json", stream=stream)
        logging.getLogger("usage_core.x").log(
            25, "Reseller usage sync completed", extra=ctx(eylandoo_configs_processed=3)
        )
        document = json.loads(stream.getvalue())
        assert document["level"] == "notice"
        assert document["context"] == {"eylandoo_configs_processed": 3}

    def test_scrub_masks_credentials(self) -> None:
        """Passwords, tokens and bearer headers are masked wherever they appear."""
        text = scrub(
            'password=hunter2&x=1 {"access_token": "eyJabc.def", "api_key":"K1"} '
            "Authorization: Bearer eyJhbGciOi.x.y"
        )
        for secret in ("hunter2", "eyJabc.def", "K1", "eyJhbGciOi"):
            assert secret not in text


class TestSyncOneOutput:
    """The text of `sync-one` is the seed's, line for line."""

    def test_seed_example_exactly(self) -> None:
        """The seed's example config and panel reply print the seed's lines."""
        w = world([config()], {10: {"test_user_123": GIB_READING}})
        located = w.use_case.locate(123)
        report = w.use_case.sync(located)
        assert "\n".join(header_lines(located) + result_lines(report)) == SEED_OUTPUT

    def test_bytes_format(self) -> None:
        """Two decimals, no thousands separator, negatives keep their sign."""
        assert fmt_bytes(10_737_418_240) == "10737418240 bytes (10240.00 MB)"
        assert fmt_bytes(-1_048_576) == "-1048576 bytes (-1.00 MB)"
