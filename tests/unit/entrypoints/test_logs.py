"""Log formatting: Laravel-style text or JSON lines, credentials scrubbed."""

import io
import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from usage_core.log import Line, ctx, log_each
from usage_core.recording import READ_LINE
from usage_entrypoints.logs import _context_json, configure_logging, scrub


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


LINES: tuple[Line, ...] = ((("Eylandoo", "u1", 5), {"config_id": 9}), (("Eylandoo", "u2", 0), {}))


class TestLinesLoggedTogether:
    """`log_each` writes one record that reads as one line per item."""

    def test_text_lines_each_with_prefix_and_context(self) -> None:
        """Each line has the Laravel prefix, its own message and its own context."""
        stream = io.StringIO()
        configure_logging(stream=stream)
        log_each(logging.getLogger("usage_core.x"), logging.INFO, READ_LINE, LINES)
        lines = stream.getvalue().splitlines()
        assert len(lines) == 2
        assert lines[0].endswith(
            'usage-sync.INFO: Eylandoo usage for user u1: 5 bytes {"config_id": 9}'
        )
        assert lines[1].endswith("usage-sync.INFO: Eylandoo usage for user u2: 0 bytes")

    def test_json_lines_each_a_document(self) -> None:
        """The JSON format gives each line its own object."""
        stream = io.StringIO()
        configure_logging(log_format="json", stream=stream)
        log_each(logging.getLogger("usage_core.x"), logging.INFO, READ_LINE, LINES)
        documents = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [d["message"] for d in documents] == [
            "Eylandoo usage for user u1: 5 bytes",
            "Eylandoo usage for user u2: 0 bytes",
        ]
        assert [d["context"] for d in documents] == [{"config_id": 9}, {}]
        assert {d["logger"] for d in documents} == {"usage_core.x"}

    def test_other_handlers_see_the_lines_joined(self) -> None:
        """A handler that is not ours gets the lines as one message."""
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logger = logging.getLogger("usage_core.joined")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            log_each(logger, logging.INFO, READ_LINE, LINES)
        finally:
            logger.removeHandler(handler)
        assert [r.getMessage() for r in records] == [
            "Eylandoo usage for user u1: 5 bytes\nEylandoo usage for user u2: 0 bytes"
        ]

    def test_nothing_when_level_is_off(self) -> None:
        """Lines below the configured level are not built into a record at all."""
        stream = io.StringIO()
        configure_logging(stream=stream, level="INFO")
        log_each(logging.getLogger("usage_core.x"), logging.DEBUG, READ_LINE, LINES)
        assert stream.getvalue() == ""

    def test_credentials_scrubbed_on_every_line(self) -> None:
        """A credential-looking value in any one line is masked."""
        stream = io.StringIO()
        configure_logging(stream=stream)
        lines = [(("X", "ok", 1), {}), (("X", "token=abc123", 2), {})]
        log_each(logging.getLogger("usage_core.x"), logging.INFO, READ_LINE, lines)
        assert "abc123" not in stream.getvalue()
        assert len(stream.getvalue().splitlines()) == 2


@given(
    st.dictionaries(
        st.text(alphabet='abcdefghijklmnopqrstuvwxyz_Z-"é', max_size=12),
        st.one_of(st.integers(), st.booleans(), st.text(max_size=5), st.none()),
        max_size=4,
    )
)
def test_context_text_is_json_dumps(context: dict[str, object]) -> None:
    """The direct rendering of a context equals `json.dumps` of it, for any keys and values."""
    assert _context_json(context) == json.dumps(context, default=str, ensure_ascii=False)
