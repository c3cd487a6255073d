"""The terminal's live bar and the log lines written above it."""

import io
import logging
from datetime import UTC, datetime

import pytest

from usage_core.summary import SyncSummary
from usage_entrypoints.console import panel_counts, progress_bar
from usage_entrypoints.logs import configure_logging


def summary_of(done_ok: int, failed: int, configs: int) -> SyncSummary:
    """A summary with `done_ok` Marzban configs read and `failed` Xui ones failed."""
    summary = SyncSummary(started_at=datetime(2026, 11, 24, tzinfo=UTC), configs=configs)
    summary.count("marzban", "updated", done_ok)
    if failed:
        summary.count("xui", "failed", failed)
    return summary


def test_panel_counts() -> None:
    """Each panel type's configs read so far, and the failed and skipped ones when there are."""
    assert panel_counts(summary_of(3, 2, 5).counts) == "marzban 3 ok · xui 0 ok, 2 failed"


def test_log_lines_go_above_the_one_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log line clears the bar, is written, and the bar is drawn again below it."""
    monkeypatch.setenv("COLUMNS", "160")
    screen = io.StringIO()
    configure_logging(stream=screen)
    with progress_bar(True, screen) as progress:
        assert progress is not None
        progress(summary_of(2, 0, 4))
        logging.getLogger("usage_core.sync_all").warning("Panel 7 failed for all its 2 configs")
        progress(summary_of(2, 2, 4))
    text = screen.getvalue()
    bar_half = "Syncing  [" + "#" * 18 + "-" * 18 + "]   50%  2/4  marzban 2 ok"
    assert text.startswith("\r\x1b[2K" + bar_half)
    assert f"{bar_half}\r\x1b[2K[" in text  # cleared before the log line
    assert "Panel 7 failed for all its 2 configs\n" + bar_half in text  # drawn again below
    assert text.endswith("100%  4/4  marzban 2 ok · xui 0 ok, 2 failed\n")
    configure_logging()
