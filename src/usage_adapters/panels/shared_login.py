"""One login shared by every thread of a panel session."""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar, overload

import attrs
import httpx

from usage_adapters.panels.bulk import Batch, BulkOptions, BulkSession
from usage_core.model import Panel
from usage_core.readings import HardFailure

T = TypeVar("T")


@attrs.frozen
class Credential(Generic[T]):
    """What a login gave (a token, a cookie generation), and whether it is new."""

    value: T
    fresh: bool  # obtained during the current fetch


class SharedLogin(Generic[T]):
    """The login state machine of a session, safe to share between threads.

    Threads holding the same stale credential share one re-login; within a
    batch only one re-login is allowed, and a batch whose login failed fails
    every later request at once. A login the panel refused (see `refuse`) is
    remembered for the session: later fetches fail without asking again.
    """

    def __init__(
        self,
        log_in: Callable[[Batch | None], T | HardFailure],
        on_relogin: Callable[[str | None], None],
    ) -> None:
        self._log_in = log_in
        self._on_relogin = on_relogin
        self._lock = threading.Lock()
        self._current: T | None = None
        self._refused: HardFailure | None = None

    def refuse(self, failure: HardFailure) -> None:
        """Remember a refusal (wrong credentials): no more logins this session."""
        self._refused = failure

    @overload
    def get(self, stale: None, batch: Batch | None) -> Credential[T] | HardFailure: ...

    @overload
    def get(
        self, stale: T, batch: Batch | None, username: str | None = None
    ) -> Credential[T] | HardFailure | None: ...

    def get(
        self, stale: T | None, batch: Batch | None, username: str | None = None
    ) -> Credential[T] | HardFailure | None:
        """The current credential, logging in when there is none or it is `stale`.

        None when `stale` needed a re-login and the batch had used its one up.
        """
        with self._lock:
            if self._refused is not None:
                return self._refused
            if self._current is not None and self._current != stale:
                return Credential(self._current, fresh=False)
            if batch is not None and batch.login_failure is not None:
                return batch.login_failure
            if stale is not None:
                if batch is not None and not batch.take_relogin():
                    return None
                self._on_relogin(username)
            self._current = None
            outcome = self._log_in(batch)
            if isinstance(outcome, HardFailure):
                if batch is not None:
                    batch.login_failure = outcome
                return outcome
            self._current = outcome
            return Credential(outcome, fresh=True)


class PasswordSession(BulkSession, Generic[T]):
    """A bulk session that logs in with the panel's admin username and password."""

    def __init__(
        self, panel: Panel, client: httpx.Client, max_body_bytes: int, bulk: BulkOptions
    ) -> None:
        super().__init__(panel, client, max_body_bytes, bulk)
        self._username = panel.username or ""
        self._password = panel.password.reveal() if panel.password else ""
        self._login: SharedLogin[T] = SharedLogin(self._log_in, self._on_relogin)

    @abstractmethod
    def _log_in(self, batch: Batch | None) -> T | HardFailure:
        """Log in once; the new credential, or why not (calling `refuse` when final)."""

    @abstractmethod
    def _on_relogin(self, username: str | None) -> None:
        """Log that a lost credential is being renewed."""

    def _unusable(self) -> HardFailure | None:
        if not self._username or not self._password:
            return HardFailure("the panel has no admin username or password")
        return None

    def _log_in_for(self, batch: Batch) -> HardFailure | None:
        login = self._login.get(None, batch)
        return login if isinstance(login, HardFailure) else None
