"""Warnings for settings keys usage-sync does not read, and plurals."""

from usage_entrypoints.setting_keys import KNOWN_SETTING_KEYS, plural, unknown_key_warning


def test_known_keys_need_no_warning() -> None:
    """Every key usage-sync reads is set without a word."""
    assert [unknown_key_warning(key) for key in KNOWN_SETTING_KEYS] == [None] * len(
        KNOWN_SETTING_KEYS
    )


def test_typo_names_the_closest_key() -> None:
    """A key one letter off gets the key it was probably meant to be."""
    warning = unknown_key_warning("usage_sync.enforcment")
    assert warning == (
        "warning: usage-sync does not read usage_sync.enforcment; "
        "did you mean usage_sync.enforcement?"
    )


def test_unrelated_key_is_the_app_s() -> None:
    """A key like no other is the app's own: stored, with no suggestion."""
    assert unknown_key_warning("site.title") == (
        "warning: usage-sync does not read site.title; stored for the app all the same"
    )


def test_plural() -> None:
    """1 minute, 0 and 5 minutes."""
    assert [plural(n, "minute") for n in (0, 1, 5)] == ["0 minutes", "1 minute", "5 minutes"]
