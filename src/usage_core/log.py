"""Logging conventions shared by every layer.

Messages keep the original app's wording so that existing grep commands keep
working; structured values travel as a `context` mapping, rendered after the
message by the entrypoints' formatter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

# Laravel logs some lines at `notice`, which the standard library lacks; the
# entrypoints register its name when they configure logging.
NOTICE = 25

BODY_PREVIEW_CHARS = 500


def ctx(**values: object) -> Mapping[str, Mapping[str, object]]:
    """The `extra` argument that attaches `values` as a log line's context."""
    return {"context": values}


# The attribute of a log record that carries the lines of `log_each`.
EACH = "each"

# One line of `log_each`: the message's arguments and the line's context.
Line = tuple[tuple[object, ...], Mapping[str, object]]


class _Joined:
    """The lines of `log_each` as one message, joined only if a handler asks for it."""

    def __init__(self, msg: str, lines: Sequence[Line]) -> None:
        self._msg = msg
        self._lines = lines

    def __str__(self) -> str:
        return "\n".join(self._msg % args for args, _ in self._lines)


def log_each(logger: logging.Logger, level: int, msg: str, lines: Sequence[Line]) -> None:
    """Log `msg % args` with its own context for each of `lines`, as one record.

    A full sync writes a line for each Eylandoo config, tens of thousands of them;
    one record for a panel's lines costs a fraction of one record for each.
    The entrypoints' formatters write every line with its own prefix and context
    (the record's `each`), so the log reads as if each had been logged alone;
    any other handler sees the lines joined by newlines.
    """
    if lines and logger.isEnabledFor(level):
        logger.log(level, _Joined(msg, lines), extra={EACH: (msg, lines)})
