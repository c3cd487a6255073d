"""The sync interval: turning the raw `settings` value into minutes."""

from __future__ import annotations

import re

import attrs

INTERVAL_SETTING_KEY = "reseller.usage_sync_interval_minutes"
DEFAULT_INTERVAL_MINUTES = 5
MIN_INTERVAL_MINUTES = 1
MAX_INTERVAL_MINUTES = 5

_INTEGER = re.compile(r"[+-]?[0-9]+")
# PHP's (int) cast of a decimal string keeps the integer part: "2.9" -> 2.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)")


@attrs.frozen
class IntervalSetting:
    """The interval read from the settings table.

    Attributes:
        raw: The stored value, or None when the row is missing.
        minutes: The effective interval, always within 1..5.
        problem: Why `raw` could not be used (the default applies), or None.
        clamped: True when a usable value lay outside 1..5 and was clamped.
    """

    raw: str | None
    minutes: int
    problem: str | None = None
    clamped: bool = False


def clamp_minutes(value: int) -> int:
    """Clamp an integer interval into 1..5."""
    return max(MIN_INTERVAL_MINUTES, min(MAX_INTERVAL_MINUTES, value))


def parse_interval(raw: str | None) -> IntervalSetting:
    """Turn the raw setting value into an effective interval.

    Missing gives the default 5. An integer, with or without surrounding
    whitespace, is clamped into 1..5; a decimal string is truncated toward
    zero first. Anything else gives the default, with `problem` set so the
    caller can log a warning naming the bad value.
    """
    if raw is None:
        return IntervalSetting(raw=None, minutes=DEFAULT_INTERVAL_MINUTES)
    text = raw.strip()
    if _INTEGER.fullmatch(text):
        number = int(text)
    elif _DECIMAL.fullmatch(text):
        whole = text.split(".", 1)[0]
        number = int(whole) if whole not in ("", "+", "-") else 0
    else:
        return IntervalSetting(
            raw=raw,
            minutes=DEFAULT_INTERVAL_MINUTES,
            problem=f"{raw!r} is not a whole number of minutes",
        )
    minutes = clamp_minutes(number)
    return IntervalSetting(raw=raw, minutes=minutes, clamped=minutes != number)
