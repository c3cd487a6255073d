"""Decryption of values stored with Laravel's `Crypt::encryptString`.

The PHP app keeps `panels.password` and `panels.api_token` encrypted with its
`APP_KEY`. A payload is base64 of a JSON object `{iv, value, mac, tag}`: `value`
is the base64 AES ciphertext, `mac` the hex HMAC-SHA256 of `iv . value` (both
as base64 text) under the key; AES-GCM payloads carry a `tag` and no MAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_BLOCK_BITS = 128
_IV_BYTES = 16
_GCM_IV_BYTES = 12
_KEY_SIZES = (16, 32)


class DecryptionError(ValueError):
    """Raised when a value cannot be decrypted; the message never holds the value."""


def parse_app_key(app_key: str) -> bytes:
    """Turn Laravel's `APP_KEY` (`base64:...` or a raw 16/32-character key) into bytes."""
    text = app_key.strip()
    if text.startswith("base64:"):
        try:
            key = base64.b64decode(text[len("base64:") :], validate=True)
        except binascii.Error as exc:
            msg = "the app key is not valid base64 after 'base64:'"
            raise DecryptionError(msg) from exc
    else:
        key = text.encode()
    if len(key) not in _KEY_SIZES:
        msg = f"the app key must be 16 or 32 bytes, not {len(key)}"
        raise DecryptionError(msg)
    return key


def _payload(value: str) -> Mapping[str, object] | None:
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(decoded, dict):
        return None
    if not all(isinstance(decoded.get(k), str) for k in ("iv", "value")):
        return None
    return decoded


def looks_encrypted(value: str) -> bool:
    """True when `value` has the shape of a Laravel encryption payload."""
    return _payload(value) is not None


class LaravelDecrypter:
    """Decrypts `Crypt::encryptString` payloads made with one `APP_KEY`."""

    def __init__(self, app_key: str) -> None:
        self._key = parse_app_key(app_key)

    def decrypt_string(self, value: str) -> str:
        """The plain text of an `encryptString` payload; DecryptionError otherwise."""
        payload = _payload(value)
        if payload is None:
            msg = "the value is not a Laravel encryption payload"
            raise DecryptionError(msg)
        try:
            iv = base64.b64decode(str(payload["iv"]), validate=True)
            ciphertext = base64.b64decode(str(payload["value"]), validate=True)
            tag_text = str(payload.get("tag") or "")
            tag = base64.b64decode(tag_text, validate=True) if tag_text else b""
        except binascii.Error as exc:
            msg = "the payload's iv, value or tag is not base64"
            raise DecryptionError(msg) from exc
        plain = self._gcm(iv, ciphertext, tag) if tag else self._cbc(payload, iv, ciphertext)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = "the decrypted value is not UTF-8 text"
            raise DecryptionError(msg) from exc

    def _cbc(self, payload: Mapping[str, object], iv: bytes, ciphertext: bytes) -> bytes:
        mac = payload.get("mac")
        if not isinstance(mac, str) or not mac:
            msg = "the payload has no MAC"
            raise DecryptionError(msg)
        expected = hmac.new(
            self._key, (str(payload["iv"]) + str(payload["value"])).encode(), hashlib.sha256
        ).hexdigest()
        # compare_digest refuses non-ASCII text: compare bytes, so a garbage MAC is just wrong.
        if not hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace")):
            msg = "the MAC is invalid (wrong APP_KEY or a tampered value)"
            raise DecryptionError(msg)
        if len(iv) != _IV_BYTES or not ciphertext or len(ciphertext) % _IV_BYTES:
            msg = "the payload's iv or ciphertext has the wrong length"
            raise DecryptionError(msg)
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            msg = "the decrypted value has invalid padding"
            raise DecryptionError(msg) from exc

    def _gcm(self, iv: bytes, ciphertext: bytes, tag: bytes) -> bytes:
        if len(iv) != _GCM_IV_BYTES:
            msg = "the payload's iv has the wrong length for AES-GCM"
            raise DecryptionError(msg)
        try:
            return AESGCM(self._key).decrypt(iv, ciphertext + tag, None)
        except Exception as exc:  # cryptography raises InvalidTag
            msg = "the GCM tag is invalid (wrong APP_KEY or a tampered value)"
            raise DecryptionError(msg) from exc
