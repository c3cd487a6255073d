"""Reading `panels.password` and `panels.api_token`, encrypted by the app or not."""

from __future__ import annotations

from usage_adapters.laravel_crypt import DecryptionError, LaravelDecrypter, looks_encrypted
from usage_adapters.sql.panels import CredentialReader
from usage_core.errors import CredentialsError
from usage_core.model import Secret


def credential_reader(app_key: str | None) -> CredentialReader:
    """A reader that decrypts with `app_key`, or reads plain text without one.

    Without a key, a value shaped like a Laravel payload is refused rather than
    sent to a panel as a password.
    """
    if not app_key:

        def read_plain(panel_id: int, column: str, value: str) -> Secret:
            if looks_encrypted(value):
                why = "it is encrypted by the app; set USAGE_SYNC_APP_KEY to the app's APP_KEY"
                raise CredentialsError(panel_id, column, why)
            return Secret(value)

        return read_plain

    decrypter = LaravelDecrypter(app_key)

    def read_encrypted(panel_id: int, column: str, value: str) -> Secret:
        try:
            return Secret(decrypter.decrypt_string(value))
        except DecryptionError as exc:
            raise CredentialsError(panel_id, column, str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:
            # Whatever a malformed payload makes the codecs raise: this panel fails alone.
            why = f"the value is not a usable encryption payload ({type(exc).__name__})"
            raise CredentialsError(panel_id, column, why) from None

    return read_encrypted
