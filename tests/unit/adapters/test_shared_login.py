"""`SharedLogin` with a login memory: recall first, keep what is new, forget what is refused."""

from __future__ import annotations

from usage_adapters.panels.dialect import LoginFailure, Unasked
from usage_adapters.panels.login import Credential, LoginAllowance, SharedLogin
from usage_core.readings import HardFailure


class FakeMemory:
    """A `LoginMemory` holding at most one credential, recording what it was told."""

    def __init__(self, kept: object | None = None) -> None:
        self.kept = kept
        self.calls: list[str] = []

    def recall(self) -> object | None:
        self.calls.append("recall")
        return self.kept

    def keep(self, credential: object) -> None:
        self.calls.append(f"keep {credential}")
        self.kept = credential

    def forget(self) -> None:
        self.calls.append("forget")
        self.kept = None


class FakePanel:
    """Hands out numbered tokens, or the outcomes it is given."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.logins = 0

    def log_in(self, deadline: float | None) -> object:
        self.logins += 1
        return self.outcomes.pop(0) if self.outcomes else f"token-{self.logins}"


def shared(panel: FakePanel, memory: FakeMemory) -> SharedLogin:
    """A shared login over the fake panel and memory."""
    return SharedLogin(panel.log_in, lambda username: None, memory)


def test_a_kept_credential_is_used_without_a_login() -> None:
    """The kept token comes back not fresh, once recalled, and nothing is logged in."""
    panel, memory = FakePanel(), FakeMemory("kept-token")
    login = shared(panel, memory)
    assert login.current(None) == Credential("kept-token", fresh=False)
    assert login.current(None) == Credential("kept-token", fresh=False)
    assert (panel.logins, memory.calls) == (0, ["recall"])


def test_a_refused_kept_credential_is_forgotten_and_renewed_once() -> None:
    """Its renewal drops it, logs in once, keeps the new one; a second renewal is refused."""
    panel, memory = FakePanel(), FakeMemory("kept-token")
    login = shared(panel, memory)
    batch = LoginAllowance()
    stale = login.current(batch)
    assert isinstance(stale, Credential)
    assert login.renew(stale.value, batch) == Credential("token-1", fresh=True)
    assert login.renew("token-1", batch) is None
    assert memory.calls == ["recall", "forget", "keep token-1"]
    assert memory.kept == "token-1"


def test_nothing_kept_means_one_login_that_is_kept() -> None:
    """An empty memory: one login, whose credential is kept for the next run."""
    panel, memory = FakePanel(), FakeMemory()
    login = shared(panel, memory)
    assert login.current(None) == Credential("token-1", fresh=True)
    assert login.current(None) == Credential("token-1", fresh=False)
    assert memory.calls == ["recall", "keep token-1"]


def test_an_unasked_credential_is_neither_fresh_nor_kept() -> None:
    """An API key (no login exchange) may be renewed at once and is never written down."""
    panel, memory = FakePanel(Unasked("api-key")), FakeMemory()
    login = shared(panel, memory)
    assert login.current(LoginAllowance(renew_fresh=False)) == Credential("api-key", fresh=False)
    assert memory.calls == ["recall"]


def test_a_refused_login_is_not_kept() -> None:
    """A login the panel refuses leaves the memory untouched."""
    refusal = LoginFailure(HardFailure("login failed: HTTP 401"), final=True)
    panel, memory = FakePanel(refusal), FakeMemory()
    login = shared(panel, memory)
    assert login.current(None) == HardFailure("login failed: HTTP 401")
    assert memory.calls == ["recall"]
