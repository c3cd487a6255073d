"""What every dialect's set-state code shares: reading replies of write requests."""

from __future__ import annotations

import attrs

from usage_adapters.panels.http import (
    HttpChannel,
    NotJson,
    Sent,
    TransportProblem,
    decode_json,
)
from usage_core.readings import HardFailure, RemoteResult

# Statuses worth trying again in the same run: the panel (or a proxy) is busy or broken.
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


@attrs.frozen
class Answer:
    """A reply that came: its status, and its JSON value (None when it is not JSON)."""

    status: int
    value: object

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def answer(
    http: HttpChannel, sent: Sent | HardFailure, what: str, *, expected: tuple[int, ...] = ()
) -> Answer | RemoteResult:
    """A 2xx reply (or one of `expected`) as an `Answer`; anything else as a failed result."""
    if isinstance(sent, HardFailure):
        return RemoteResult(False, f"{what}: {sent.reason}")
    if isinstance(sent, TransportProblem):
        return RemoteResult(False, f"{what}: {sent.reason}", retry=sent.unreachable)
    if not sent.ok and sent.status not in expected:
        reason = http.http_failure(sent).reason
        return RemoteResult(False, f"{what}: {reason}", retry=sent.status in _TRANSIENT)
    decoded = decode_json(sent)
    return Answer(sent.status, None if isinstance(decoded, NotJson) else decoded)


def state_word(enabled: bool) -> str:
    """ "enabled" or "disabled"."""
    return "enabled" if enabled else "disabled"


def done(enabled: bool, *, already: bool = False, verified: bool = False) -> RemoteResult:
    """Success, saying whether the user was already in the state."""
    word = state_word(enabled)
    return RemoteResult(True, f"already {word}" if already else word, verified=verified)
