"""Decrypting values the PHP app stored with `Crypt::encryptString`."""

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage_adapters.credentials import credential_reader
from usage_adapters.laravel_crypt import DecryptionError, LaravelDecrypter, looks_encrypted
from usage_core.errors import CredentialsError

# Produced independently of this code, with the openssl command line:
#   openssl enc -aes-256-cbc -K <hex key> -iv 000102…0f -base64 -A
#   openssl dgst -sha256 -mac HMAC -macopt hexkey:<hex key>   over base64(iv) . value
# and JSON written the way PHP's json_encode escapes slashes.
APP_KEY = "base64:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
PASSWORD_PAYLOAD = (
    "eyJpdiI6IkFBRUNBd1FGQmdjSUNRb0xEQTBPRHc9PSIsInZhbHVlIjoiY2RTRkZwY3ArYkdoWUR2Tk91Slh2Zz09"
    "IiwibWFjIjoiZjViMzBjYTM2ZDI3ZjJiNGFlNDcyZGRmY2UxMjFjYzdmMzY2ZWFjZDA3ODZjMzVkNGUwMDMyMDhj"
    "NmFiMGE3MyIsInRhZyI6IiJ9"
)
TOKEN_PAYLOAD = (
    "eyJpdiI6IkFBRUNBd1FGQmdjSUNRb0xEQTBPRHc9PSIsInZhbHVlIjoiWW10WThtbHl1Y2dybFYyZGp4WlM2UHVW"
    "UStOY1lMWlBYcGFhRWxjOVFEaz0iLCJtYWMiOiJlMDIwYWE5MmVmNDUwYWZhN2U0NGExYzRmZTBjNzExZDFjMDYx"
    "MTY1NzU2MjQ4NGZmOTdmYTYwODk1NDJjNzdiIiwidGFnIjoiIn0="
)


def tampered(payload: str, **changes: str) -> str:
    """The payload with some of its JSON fields replaced."""
    document = json.loads(base64.b64decode(payload))
    document.update(changes)
    return base64.b64encode(json.dumps(document).encode()).decode()


class TestLaravelDecrypter:
    """`LaravelDecrypter` reads AES-256-CBC payloads and verifies their MAC."""

    def test_decrypts_openssl_vectors(self) -> None:
        """Payloads made by openssl decrypt to their plain text."""
        decrypter = LaravelDecrypter(APP_KEY)
        assert decrypter.decrypt_string(PASSWORD_PAYLOAD) == "s3cr3t-P@ss"
        assert decrypter.decrypt_string(TOKEN_PAYLOAD) == "eyl-api-key/with+slashes=="

    def test_wrong_key_fails_the_mac(self) -> None:
        """Another APP_KEY is caught by the MAC, before any decryption."""
        other = LaravelDecrypter("base64:" + base64.b64encode(b"x" * 32).decode())
        with pytest.raises(DecryptionError, match="MAC is invalid"):
            other.decrypt_string(PASSWORD_PAYLOAD)

    def test_tampered_value_fails_the_mac(self) -> None:
        """A changed ciphertext is refused."""
        bad = tampered(PASSWORD_PAYLOAD, value=base64.b64encode(b"0" * 16).decode())
        with pytest.raises(DecryptionError, match="MAC"):
            LaravelDecrypter(APP_KEY).decrypt_string(bad)

    def test_garbage_is_refused(self) -> None:
        """Plain text and broken payloads raise DecryptionError, not something else."""
        decrypter = LaravelDecrypter(APP_KEY)
        for value in ("plain-password", "", base64.b64encode(b"[1,2]").decode()):
            with pytest.raises(DecryptionError):
                decrypter.decrypt_string(value)

    def test_bad_app_keys(self) -> None:
        """A key of the wrong size or broken base64 is refused at construction."""
        for key in ("base64:!!!", "short", "base64:" + base64.b64encode(b"k" * 20).decode()):
            with pytest.raises(DecryptionError):
                LaravelDecrypter(key)

    def test_looks_encrypted(self) -> None:
        """Payloads look encrypted; ordinary passwords do not."""
        assert looks_encrypted(PASSWORD_PAYLOAD)
        assert not looks_encrypted("hunter2")


class TestCredentialReader:
    """`credential_reader` decrypts with a key and reads plain text without one."""

    def test_with_key(self) -> None:
        """With the app key the stored payload becomes the secret."""
        read = credential_reader(APP_KEY)
        assert read(7, "password", PASSWORD_PAYLOAD).reveal() == "s3cr3t-P@ss"

    def test_undecryptable_value_names_the_panel_not_the_value(self) -> None:
        """A value that does not decrypt gives an error naming the panel and column only."""
        read = credential_reader(APP_KEY)
        with pytest.raises(CredentialsError) as caught:
            read(7, "api_token", "not-a-payload-hunter2")
        assert "panel 7: api_token" in str(caught.value)
        assert "hunter2" not in str(caught.value)

    def test_without_key_plain_text(self) -> None:
        """Without a key, values are read as plain text."""
        assert credential_reader(None)(7, "password", "hunter2").reveal() == "hunter2"

    def test_without_key_encrypted_value_is_refused(self) -> None:
        """Without a key, an encrypted value is refused instead of being sent as a password."""
        with pytest.raises(CredentialsError, match="USAGE_SYNC_APP_KEY"):
            credential_reader(None)(7, "password", PASSWORD_PAYLOAD)


class TestAnyPayload:
    """Whatever a `panels` credential column holds, reading it fails alone and says why."""

    NON_ASCII_MAC = (
        "eyJpdiI6ICJBQUFBQUFBQUFBQUFBQUFBQUFBQUFBPT0iLCAidmFsdWUiOiAiQUFBQUFBQUFBQUFBQUF"
        "BQUFBQUFBQT09IiwgIm1hYyI6ICJcdTAwZTlcdTAwZTkifQ=="
    )

    def test_a_non_ascii_mac_is_a_credentials_error(self) -> None:
        """The payload that once stopped every panel's sync names its panel instead."""
        reader = credential_reader(APP_KEY)
        with pytest.raises(CredentialsError, match="panel 7: password"):
            reader(7, "password", self.NON_ASCII_MAC)

    @given(
        st.dictionaries(
            st.sampled_from(["iv", "value", "mac", "tag"]),
            st.one_of(st.text(max_size=30), st.integers(), st.none()),
        )
    )
    def test_any_json_payload_is_a_credentials_error(self, payload: dict[str, object]) -> None:
        """A payload of any shape and content ends in CredentialsError, never another error."""
        value = base64.b64encode(json.dumps(payload).encode()).decode()
        with pytest.raises(CredentialsError):
            credential_reader(APP_KEY)(3, "api_token", value)

    @given(st.text(max_size=60))
    def test_any_text_is_refused_naming_the_panel(self, value: str) -> None:
        """Text that is not the app's payload is a CredentialsError naming the panel."""
        with pytest.raises(CredentialsError, match="panel 5"):
            credential_reader(APP_KEY)(5, "password", value)
