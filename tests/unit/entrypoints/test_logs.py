"""Log formatting: Laravel-style text or JSON lines, credentials scrubbed."""

import io
import json
import logging

from usage_core.log import ctx
from usage_entrypoints.logs import configure_logging, scrub


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
