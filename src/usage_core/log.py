"""Logging conventions shared by every layer.

Messages keep the original app's wording so that existing grep commands keep
working; structured values travel as a `context` mapping, rendered after the
message by the entrypoints' formatter.
"""

from __future__ import annotations

from collections.abc import Mapping

# Laravel logs some lines at `notice`, which the standard library lacks; the
# entrypoints register its name when they configure logging.
NOTICE = 25

BODY_PREVIEW_CHARS = 500


def ctx(**values: object) -> Mapping[str, Mapping[str, object]]:
    """The `extra` argument that attaches `values` as a log line's context."""
    return {"context": values}
