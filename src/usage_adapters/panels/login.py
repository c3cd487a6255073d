"""One login shared by every thread of a panel session."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import attrs

from usage_adapters.panels.dialect import LoginFailure, Unasked
from usage_core.readings import HardFailure


class LoginMemory(Protocol):
    """Where a session's login outlives the session (see `kept_logins.SessionLogins`)."""

    def recall(self) -> object | None:
        """A credential kept from an earlier session, ready to use, or None."""
        ...

    def keep(self, credential: object) -> None:
        """Keep a credential just obtained."""
        ...

    def forget(self) -> None:
        """Drop the kept credential: the panel refused it."""
        ...


@attrs.frozen
class Credential:
    """What a login gave (a token, a cookie generation), and whether it is new."""

    value: object
    fresh: bool  # obtained during the current fetch


class LoginAllowance:
    """What one batch of requests may spend: a deadline, one re-login, and its failure.

    Once a login fails during a batch, the batch's later requests fail with
    it at once instead of trying to log in again, once per user. With
    `renew_fresh` false (one user's read or write), a credential obtained
    during the call itself is not renewed: its rejection is the answer.
    """

    def __init__(self, deadline: float | None = None, *, renew_fresh: bool = True) -> None:
        self.deadline = deadline
        self.renew_fresh = renew_fresh
        self.failure: HardFailure | None = None
        self._lock = threading.Lock()
        self._relogins = 1

    def take_relogin(self) -> bool:
        """True (once) when a rejected credential may be renewed."""
        with self._lock:
            if self._relogins <= 0:
                return False
            self._relogins -= 1
            return True


class SharedLogin:
    """The login state machine of a session, safe to share between threads.

    Threads holding the same stale credential share one re-login; within a
    batch only one re-login is allowed, and a batch whose login failed fails
    every later request at once. A login the panel refused is remembered for
    the session: later fetches fail without asking again.

    With a `memory`, the session first tries the login kept by an earlier
    one (not `fresh`, so a rejection of it is renewed once, even for one
    user's read); a rejected credential is forgotten before logging in
    again, and every new login is kept.
    """

    def __init__(
        self,
        log_in: Callable[[float | None], object | LoginFailure],
        on_relogin: Callable[[str | None], None],
        memory: LoginMemory | None = None,
    ) -> None:
        self._log_in = log_in
        self._on_relogin = on_relogin
        self._memory = memory
        self._lock = threading.Lock()
        self._current: object | None = None
        self._refused: HardFailure | None = None
        self._recalled = memory is None

    def current(self, batch: LoginAllowance | None) -> Credential | HardFailure:
        """The current credential, logging in when there is none."""
        with self._lock:
            return self._obtain(None, batch, None) or HardFailure("no credential")

    def renew(
        self, stale: object, batch: LoginAllowance | None, username: str | None = None
    ) -> Credential | HardFailure | None:
        """A credential other than `stale`, logging in again when `stale` is the current one.

        None when that needs a re-login and the batch has used its one up.
        """
        with self._lock:
            return self._obtain(stale, batch, username)

    def _obtain(
        self, stale: object | None, batch: LoginAllowance | None, username: str | None
    ) -> Credential | HardFailure | None:
        if self._refused is not None:
            return self._refused
        if self._current is not None and self._current != stale:
            return Credential(self._current, fresh=False)
        if batch is not None and batch.failure is not None:
            return batch.failure
        if not self._recalled and self._memory is not None:
            self._recalled = True
            kept = self._memory.recall()
            if kept is not None:
                self._current = kept
                return Credential(kept, fresh=False)
        if stale is not None:
            if batch is not None and not batch.take_relogin():
                return None
            if self._memory is not None:
                self._memory.forget()
            self._on_relogin(username)
        self._current = None
        return self._settle(self._log_in(batch.deadline if batch is not None else None), batch)

    def _settle(
        self, outcome: object | LoginFailure, batch: LoginAllowance | None
    ) -> Credential | HardFailure:
        """The login's credential made current (and kept), or its failure noted."""
        if isinstance(outcome, LoginFailure):
            if outcome.final:
                self._refused = outcome.failure
            if batch is not None:
                batch.failure = outcome.failure
            return outcome.failure
        if isinstance(outcome, Unasked):
            self._current = outcome.value
            return Credential(outcome.value, fresh=False)
        self._current = outcome
        if self._memory is not None:
            self._memory.keep(outcome)
        return Credential(outcome, fresh=True)
