"""What `usage-sync sync` shows on a terminal: one live bar with per-panel-type counts.

Per-config log lines would scroll the bar away (a sync of 30,000 configs
writes thousands), so on a terminal they stay out of stderr unless asked for
with `-v`; a log file still gets every line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import typer

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


@contextmanager
def progress_bar(show: bool) -> Iterator[Progress | None]:
    """A progress callback drawing one bar on the terminal, or None."""
    if not show:
        yield None
        return
    with ExitStack() as stack:
        bars: list[Any] = []
        drawn = [0]

        def update(summary: SyncSummary) -> None:
            if not bars:
                bar = typer.progressbar(
                    length=max(summary.configs, 1),
                    label="Syncing",
                    item_show_func=lambda text: text,
                )
                bars.append(stack.enter_context(bar))
            done = summary.done
            bars[0].current_item = panel_counts(summary.counts)
            bars[0].update(done - drawn[0])
            drawn[0] = done

        yield update


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
