"""What `usage-sync sync` shows on a terminal: one live bar with per-panel-type counts.

Per-config log lines would scroll the bar away (a sync of 30,000 configs
writes thousands), so on a terminal they stay out of stderr unless asked for
with `-v`; a log file still gets every line.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

from usage_core.summary import SyncSummary
from usage_core.sync_all import Progress
from usage_entrypoints.logs import HANDLER_NAME


def panel_counts(counts: Mapping[str, Mapping[str, int]]) -> str:
    """`marzban 120 ok, 3 failed · xui 50 ok`: each panel type's configs so far."""
    parts = []
    for panel_type, outcomes in sorted(counts.items()):
        ok = outcomes.get("updated", 0) + outcomes.get("unchanged", 0)
        text = f"{panel_type} {ok} ok"
        for outcome in ("failed", "skipped"):
            if outcomes.get(outcome, 0):
                text += f", {outcomes[outcome]} {outcome}"
        parts.append(text)
    return " · ".join(parts)


class LiveBar:
    """One line at the bottom of the terminal, redrawn in place.

    Log lines written to the same terminal while it is shown are printed above
    it: the bar is cleared, the line written, and the bar drawn again below, so
    the terminal never holds more than one bar.
    """

    _CLEAR = "\r\x1b[2K"

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._line = ""
        self._lock = threading.RLock()

    def show(self, summary: SyncSummary) -> None:
        """Draw the bar for the summary so far."""
        total = max(summary.configs, 1)
        share = min(summary.done / total, 1.0)
        tail = f"  {share:4.0%}  {summary.done}/{summary.configs}  {panel_counts(summary.counts)}"
        columns = shutil.get_terminal_size().columns - 1
        # The counts matter more than the bar's length on a narrow terminal.
        width = max(_MIN_BAR, min(_BAR_WIDTH, columns - len("Syncing  []") - len(tail)))
        filled = round(share * width)
        line = f"Syncing  [{'#' * filled}{'-' * (width - filled)}]{tail}"
        with self._lock:
            self._line = line[: max(columns, 20)]
            self._out.write(self._CLEAR + self._line)
            self._out.flush()

    @contextmanager
    def above(self) -> Iterator[None]:
        """Clear the bar for something written to the terminal, then draw it again."""
        with self._lock:
            if self._line:
                self._out.write(self._CLEAR)
                self._out.flush()
            yield
            if self._line:
                self._out.write(self._line)
                self._out.flush()

    def close(self) -> None:
        """Leave the last bar on its line."""
        with self._lock:
            if self._line:
                self._out.write("\n")
                self._out.flush()
            self._line = ""


class _AboveTheBar:
    """A stream for the log handler that writes above the bar."""

    def __init__(self, stream: TextIO, bar: LiveBar) -> None:
        self._stream = stream
        self._bar = bar

    def write(self, text: str) -> int:
        """Write `text` above the bar."""
        with self._bar.above():
            written = self._stream.write(text)
            self._stream.flush()
        return written

    def flush(self) -> None:
        """Flush the real stream."""
        self._stream.flush()


_BAR_WIDTH = 36
_MIN_BAR = 10


@contextmanager
def progress_bar(show: bool, out: TextIO) -> Iterator[Progress | None]:
    """A progress callback drawing one bar on `out`, with the log printed above it; or None."""
    if not show:
        yield None
        return
    bar = LiveBar(out)
    handlers = [
        h
        for h in logging.getLogger().handlers
        if h.get_name() == HANDLER_NAME
        and isinstance(h, logging.StreamHandler)
        and not isinstance(h, logging.FileHandler)
    ]
    streams = [
        (handler, handler.setStream(_AboveTheBar(handler.stream, bar))) for handler in handlers
    ]
    try:
        yield bar.show
    finally:
        bar.close()
        for handler, stream in streams:
            handler.setStream(stream)


class _NotPerConfig(logging.Filter):
    """Lets through warnings and errors, but none about one config or one panel user."""

    def filter(self, record: logging.LogRecord) -> bool:
        """True for a record to show."""
        if record.levelno < logging.WARNING:
            return False
        context = getattr(record, "context", None)
        per_config = isinstance(context, Mapping) and (
            "config_id" in context or "username" in context
        )
        return not per_config


def keep_per_config_lines_off_the_terminal() -> None:
    """On stderr, show warnings and errors about panels and the run, not each config's lines.

    A log file (USAGE_SYNC_LOG_FILE) keeps every line; only a stderr handler is filtered.
    """
    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME and not isinstance(handler, logging.FileHandler):
            handler.addFilter(_NotPerConfig())
