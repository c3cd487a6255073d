"""The `settings` keys usage-sync reads, to warn about a key that is probably a typo."""

from __future__ import annotations

import difflib

from usage_core.enforcement.settings import (
    ALLOW_CONFIG_OVERRUN,
    CONFIG_GRACE_BYTES,
    CONFIG_GRACE_PERCENT,
    ENFORCEMENT_MODE,
    REMOTE_RATE,
    RESELLER_GRACE_BYTES,
    RESELLER_GRACE_PERCENT,
)
from usage_core.interval import INTERVAL_SETTING_KEY

KNOWN_SETTING_KEYS = (
    INTERVAL_SETTING_KEY,
    ENFORCEMENT_MODE,
    RESELLER_GRACE_PERCENT,
    RESELLER_GRACE_BYTES,
    CONFIG_GRACE_PERCENT,
    CONFIG_GRACE_BYTES,
    ALLOW_CONFIG_OVERRUN,
    REMOTE_RATE,
)


def unknown_key_warning(key: str) -> str | None:
    """A warning for a key usage-sync does not read, naming the closest one it does; else None.

    The table is the app's, so other keys are stored all the same.
    """
    if key in KNOWN_SETTING_KEYS:
        return None
    close = difflib.get_close_matches(key, KNOWN_SETTING_KEYS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "stored for the app all the same"
    return f"warning: usage-sync does not read {key}; {hint}"


def plural(count: int, word: str) -> str:
    """`1 minute`, `5 minutes`."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
