"""What a panel type must tell the shared reader: its dialect, as Protocols.

A dialect is a small object per panel session. It says how the session
proves who it is (`Auth`), where one user is read and how that reply is
parsed, and how the panel's listing is asked for (`Listing`). Everything
else (sessions, one shared login, concurrency, deadlines, falling back from
the listing to single reads) belongs to `usage_adapters.panels.reader`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

from usage_adapters.panels.http import HttpChannel, QueryParams, Reply, Sent
from usage_adapters.panels.json_stream import Path
from usage_core.log import ctx
from usage_core.read_strategy import ReadCosts
from usage_core.readings import CounterReading, HardFailure, RemoteResult, UsageResult


@attrs.frozen
class LoginFailure:
    """A login that did not give a credential.

    `final` marks a refusal of the credentials themselves (a 4xx, or a 2xx
    without a token): the session then asks no more.
    """

    failure: HardFailure
    final: bool


@attrs.frozen
class Unasked:
    """A credential had without asking the panel (an API key in place of a login).

    A rejection of it may be renewed even within the call that got it, and it
    is not kept between runs.
    """

    value: object


@attrs.frozen
class FetchWording:
    """The log messages of one panel's user fetch, in the original app's style."""

    exception: str
    failed: str
    unusable: str

    @classmethod
    def for_label(cls, label: str, subject: str = "User") -> FetchWording:
        """E.g. "Marzban Get User Exception:", "Marzban Get User failed:", ..."""
        return cls(
            exception=f"{label} Get {subject} Exception:",
            failed=f"{label} Get {subject} failed:",
            unusable=f"{label} Get {subject} Usage: failed to retrieve {subject.lower()} data",
        )


class Auth(Protocol):
    """How a session proves who it is to its panel."""

    @property
    def needs_login(self) -> bool:
        """False for a static key sent with every request (no login exchange)."""
        ...

    def problem(self) -> str | None:
        """Why no request can be made at all (missing credentials), or None."""
        ...

    def log_in(self, http: HttpChannel, deadline: float | None) -> object | LoginFailure:
        """Log in once: the new credential (opaque to the reader, or `Unasked`), or why not."""
        ...

    def headers(self, credential: object) -> Mapping[str, str]:
        """The headers that authenticate a request made with `credential`."""
        ...

    def lost(self, reply: Reply, route_known: bool) -> bool:
        """True when `reply` says the credential is no longer accepted."""
        ...

    def on_relogin(self, username: str | None) -> None:
        """Log that a lost credential is being renewed."""
        ...


@attrs.frozen
class Page:
    """One listing page: its raw items and how many pages the listing has.

    A keyset listing (Remnawave) cannot say how many pages it has: each page
    names the request of the next one in `next_request` instead (None on the
    last page), and its pages are fetched one after the other.
    """

    items: Sequence[object]
    pages: int
    next_request: tuple[str, QueryParams] | None = None


class Listing(Protocol):
    """How one panel's bulk listing is asked for and read."""

    @property
    def item_key(self) -> str:
        """The field of a listed item that names the user (`username`, `email`)."""
        ...

    def request(self, number: int) -> tuple[str, QueryParams]:
        """The path and query of page `number` (1-based; a keyset listing: the first)."""
        ...

    def read_page(self, decoded: object, number: int) -> Page | str:
        """The page's items, or why the reply is not a listing page."""
        ...

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A listed item's reading (a counter without a usage field asks for a single read)."""
        ...


@runtime_checkable
class WholeListing(Listing, Protocol):
    """A listing that gives every user in one reply, read element by element as it is decoded.

    Its users are the elements of the arrays at `user_arrays` (see
    `json_stream`): a reply of a million users is not built whole in memory.
    """

    @property
    def user_arrays(self) -> tuple[Path, ...]:
        """Where in the reply the arrays of users are."""
        ...

    @property
    def unread_values(self) -> tuple[Path, ...]:
        """Values of the reply that the listing does not read: checked, never built."""
        ...


@runtime_checkable
class CountedListing(Listing, Protocol):
    """A listing whose panel says how many users it holds, and what reading costs it.

    The reader then picks the listing or single reads by cost (Remnawave),
    or, for a `SelectiveListing`, exact batches as well.
    """

    @property
    def costs(self) -> ReadCosts:
        """What a request and a serialized user cost this panel type."""
        ...

    @property
    def page_concurrency(self) -> int | None:
        """Pages (and batches) the panel tolerates in flight, or None for no limit of its own."""
        ...

    def probe(self) -> tuple[str, QueryParams]:
        """The path and query of a one-item page, for its `total`."""
        ...

    def read_total(self, decoded: object) -> int | str:
        """How many users a reply says the panel holds, or why it says nothing."""
        ...


@runtime_checkable
class SelectiveListing(CountedListing, Protocol):
    """A counted listing that also answers an exact username filter.

    Marzban, PasarGuard and Marzneshin: a repeated `username=` query
    parameter returns only those users, and a one-item page carries `total`.
    The reader then picks the listing, batches or single reads by cost.
    """

    @property
    def least_batch(self) -> int:
        """Names one batch must carry (2 where a single value is a substring match)."""
        ...

    def batch(self, names: Sequence[str]) -> tuple[str, QueryParams]:
        """The path and query that return exactly the users `names`."""
        ...


class Requester(Protocol):
    """Authenticated requests to the session's panel (a rejected credential is renewed once)."""

    def __call__(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams = (),
        json_body: object = None,
        probe: bool = False,
    ) -> Sent | HardFailure:
        """One request; `probe` marks a route the panel may not have (a 404 is an answer)."""
        ...


class PanelDialect(Protocol):
    """One panel type's API, as the shared reader needs it."""

    @property
    def label(self) -> str:
        """The panel type's name in log lines, e.g. "Marzban"."""
        ...

    @property
    def wording(self) -> FetchWording:
        """The single-user fetch's log messages."""
        ...

    @property
    def auth(self) -> Auth:
        """How the session authenticates."""
        ...

    @property
    def listing(self) -> Listing:
        """The bulk listing."""
        ...

    def user_paths(self, username: str) -> Sequence[str]:
        """Where one user is read: tried in order while the panel answers 404.

        The first path that answers anything else is used for the rest of the
        session (3x-ui moved its traffic route in 3.1).
        """
        ...

    def parse_user(self, decoded: object) -> UsageResult:
        """A single-user reply's reading."""
        ...

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """Say where a single read's counter came from."""
        ...

    def set_enabled(self, api: Requester, username: str, enabled: bool) -> RemoteResult:
        """Put the user in the wanted state (set, never toggle blindly), touching nothing else."""
        ...


@runtime_checkable
class Annotates(Protocol):
    """A dialect that adds what else the panel says about read users (PasarGuard's admins)."""

    def annotate(
        self, api: Requester, results: Mapping[str, UsageResult]
    ) -> dict[str, UsageResult]:
        """`results` with notes added to the readings; failures pass through unchanged."""
        ...


def paged(items: Sequence[object], total: int | None, number: int, size: int) -> Page:
    """Page `number` of a listing of `total` users in pages of `size`.

    A first page holding everything is the only page (a panel ignoring the limit).
    """
    total = total or 0
    if number == 1 and len(items) >= total:
        return Page(items, 1)
    return Page(items, max(1, -(-total // size)))


def log_debug_reading(
    log: logging.Logger, label: str, username: str, reading: CounterReading
) -> None:
    """`<label> usage from <path>` at DEBUG, for panels whose reads the original did not log."""
    log.debug(
        "%s usage from %s",
        label,
        reading.path,
        extra=ctx(username=username, usage_bytes=reading.bytes),
    )
