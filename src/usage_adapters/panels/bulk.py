"""`fetch_many`: a panel's user listing first, single reads only for what it did not give.

Every session reads a batch of users the same way:

1. its login, once (Eylandoo has none);
2. the bulk listing, its pages fetched concurrently where it pages, keeping
   only the requested users. A user listed twice (the listing changed between
   pages) keeps the reading of the page that arrived last;
3. a single read (the `fetch_usage` path) for each requested user the
   listing did not return, whose list item has no usable usage field, or,
   when the listing failed (HTTP error, timeout, malformed JSON, unexpected
   shape), that the failed pages would have covered: pages that completed
   are kept.

Pages and single reads run on a thread pool of the panel's concurrency
(`BulkOptions.concurrency`), sharing the session's `httpx.Client`, whose
pool is sized for it. Logins are serialised by the session: one login for the
batch however many threads need it, and one shared re-login when requests
meet a 401 (at most one re-login per batch).

Time budget: a batch stops starting requests once `BulkOptions.budget_s` has
passed; requests under way have their timeouts cut to the time left. Users
not read by then get `HardFailure("the panel's time budget ran out")`. A
reply body still arriving may overrun the budget by at most one read
timeout.

Dead panels fail fast: when the listing failed in transit (connection
refused, reset, timed out) and the first single read fails in transit too,
the other users are not tried one by one; they all get that read's failure.
A login that fails (the first one, or the batch's one re-login) fails every
user still to be read with its reason: no per-user login attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Protocol, Self, TypeVar

import attrs
import httpx

from usage_adapters.panels.transport import (
    OUT_OF_TIME,
    HttpSession,
    NotJson,
    QueryParams,
    Reply,
    TransportProblem,
    decode_json,
)
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.readings import CounterReading, HardFailure, UsageResult

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_SYNC_CONCURRENCY = 4
MAX_SYNC_CONCURRENCY = 64
DEFAULT_PANEL_BUDGET_S = 120.0
# Listings carry every user at once (Eylandoo, 3x-ui) or in big pages: ~0.3-1.5 kB a user.
DEFAULT_MAX_LISTING_BYTES = 512 * 1024 * 1024
BUDGET_FAILURE = HardFailure(OUT_OF_TIME)
NO_USERNAME = HardFailure("the config has no panel username")


@attrs.frozen
class BulkOptions:
    """How one panel is read in bulk.

    Attributes:
        concurrency: Requests in flight at most (pages and single reads).
        page_size: The panel's `extra.sync_page_size`, or None for the
            dialect's default; each paged listing clamps it to its own range.
        budget_s: Seconds a `fetch_many` may take before it stops sending.
        max_listing_bytes: Listing replies longer than this are not parsed.
    """

    concurrency: int = DEFAULT_SYNC_CONCURRENCY
    page_size: int | None = None
    budget_s: float = DEFAULT_PANEL_BUDGET_S
    max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES


def bulk_options(
    panel: Panel,
    *,
    concurrency: int = DEFAULT_SYNC_CONCURRENCY,
    budget_s: float = DEFAULT_PANEL_BUDGET_S,
    max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES,
) -> BulkOptions:
    """The panel's options: `extra.sync_concurrency` (1..64) and `extra.sync_page_size`.

    Values that are not positive whole numbers (ints or digit strings) are
    ignored with a warning, leaving the defaults.
    """
    wanted = _positive_int(panel, "sync_concurrency")
    return BulkOptions(
        concurrency=min(wanted or concurrency, MAX_SYNC_CONCURRENCY),
        page_size=_positive_int(panel, "sync_page_size"),
        budget_s=budget_s,
        max_listing_bytes=max_listing_bytes,
    )


def _positive_int(panel: Panel, key: str) -> int | None:
    raw = panel.extra.get(key)
    if raw is None:
        return None
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    if value is None or value < 1:
        logger.warning(
            "Panel %s: ignoring extra.%s, not a positive whole number",
            panel.id,
            key,
            extra=ctx(panel_id=panel.id, key=key),
        )
        return None
    return value


def pool_limits(limits: httpx.Limits, concurrency: int) -> httpx.Limits:
    """`limits` widened so that `concurrency` requests never wait for a connection."""

    def at_least(value: int | None) -> int | None:
        return None if value is None else max(value, concurrency)

    return httpx.Limits(
        max_connections=at_least(limits.max_connections),
        max_keepalive_connections=at_least(limits.max_keepalive_connections),
        keepalive_expiry=limits.keepalive_expiry,
    )


class Batch:
    """One `fetch_many` call: its deadline, thread pool and login allowance.

    `login_failure` is set by the session when a login fails during the
    batch; the batch's later requests then fail with it instead of trying to
    log in again, once per user.
    """

    def __init__(self, options: BulkOptions) -> None:
        self.options = options
        self.deadline = time.monotonic() + options.budget_s
        self.login_failure: HardFailure | None = None
        self._lock = threading.Lock()
        self._relogins = 1
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def out_of_time(self) -> bool:
        """True once the budget has run out: start no new request."""
        return time.monotonic() >= self.deadline

    def take_relogin(self) -> bool:
        """True (once per batch) when a rejected token or session may be renewed."""
        with self._lock:
            if self._relogins <= 0:
                return False
            self._relogins -= 1
            return True

    def run(self, items: Sequence[_T], work: Callable[[_T], None]) -> None:
        """Call `work(item)` for every item, at most `concurrency` at a time.

        `work` must not raise; an exception escaping it is logged and that
        item is skipped.
        """
        if not items:
            return
        workers = min(self.options.concurrency, len(items))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.options.concurrency, "panel-bulk")
        pending = ((item,) for item in items)
        lock = threading.Lock()

        def loop() -> None:
            while True:
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                try:
                    work(item[0])
                except Exception:
                    logger.exception("Panel bulk read: unexpected error")

        for future in [self._pool.submit(loop) for _ in range(workers)]:
            future.result()


@attrs.frozen
class Page:
    """One listing page: its raw items and how many pages the listing has."""

    items: Sequence[object]
    pages: int


class ListingDialect(Protocol):
    """How one panel's listing is asked for and read."""

    @property
    def label(self) -> str:
        """The panel's name in log lines, e.g. "Marzban"."""
        ...

    def request(self, number: int) -> tuple[str, QueryParams]:
        """The path and query of page `number` (1-based)."""
        ...

    def read_page(self, decoded: object, number: int) -> Page | str:
        """The page's items, or why the reply is not a listing page."""
        ...

    def read_items(
        self, items: Iterable[object], wanted: Set[str]
    ) -> Iterable[tuple[str, UsageResult]]:
        """(username, reading) of each item naming a wanted user, in listing order."""
        ...


@attrs.define
class Listing:
    """What the listing gave: readings, size, and what went wrong."""

    results: dict[str, UsageResult] = attrs.field(factory=dict)
    users: int = 0
    pages: int = 0
    failure: str | None = None
    unreachable: TransportProblem | None = None

    def usable(self) -> dict[str, UsageResult]:
        """The readings that need no single read: counters with a usage field."""
        return {
            name: result
            for name, result in self.results.items()
            if isinstance(result, CounterReading) and result.has_usage_field
        }


@attrs.frozen
class Single:
    """A single read's result, and whether it failed for want of a reachable panel."""

    result: UsageResult
    unreachable: bool = False


Fetched = Reply | TransportProblem | HardFailure


class BulkSession(HttpSession):
    """An `HttpSession` with `fetch_many`; subclasses provide the panel-specific steps."""

    def __init__(
        self, panel: Panel, client: httpx.Client, max_body_bytes: int, bulk: BulkOptions
    ) -> None:
        super().__init__(panel, client, max_body_bytes)
        self._bulk = bulk

    # -- the steps each panel provides
    def _unusable(self) -> HardFailure | None:
        """Why no request can be made at all (missing credentials), or None."""
        raise NotImplementedError

    def _log_in_for(self, batch: Batch) -> HardFailure | None:
        """Make sure the session is logged in; the failure when it cannot be."""
        return None

    def _dialect(self) -> ListingDialect:
        raise NotImplementedError

    def _get_page(self, path: str, params: QueryParams, batch: Batch) -> Fetched:
        """One authenticated listing request (renewing the login once on a rejection)."""
        raise NotImplementedError

    def _single(self, username: str, batch: Batch | None) -> Single:
        """The single-user read of `fetch_usage`, within `batch`'s budget."""
        raise NotImplementedError

    # -- the shared algorithm
    def fetch_usage(self, username: str) -> UsageResult:
        """The user's counter from its single-user route, or a hard failure."""
        return self._single(username, None).result

    def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
        """A result for every name: the listing where it serves, single reads otherwise."""
        names = list(dict.fromkeys(usernames))
        results: dict[str, UsageResult] = {}
        wanted = [name for name in names if name]
        if len(wanted) < len(names):
            results[""] = NO_USERNAME
        failure = self._unusable() if wanted else None
        if failure is not None:
            results.update(dict.fromkeys(wanted, failure))
            wanted = []
        if wanted:
            with Batch(self._bulk) as batch:
                self._read_batch(wanted, batch, results)
        return {name: results[name] for name in names}

    def _read_batch(self, wanted: list[str], batch: Batch, results: dict[str, UsageResult]) -> None:
        label = self._dialect().label
        failure = self._log_in_for(batch)
        if failure is not None:
            results.update(
                dict.fromkeys(wanted, BUDGET_FAILURE if batch.out_of_time() else failure)
            )
            self._log_budget(label, results, batch)
            return
        listing = self._read_listing(set(wanted), batch)
        usable = listing.usable()
        results.update(usable)
        rest = [name for name in wanted if name not in usable]
        if rest and listing.failure is None:
            without_usage = sum(name in listing.results for name in rest)
            logger.info(
                "%s: %d users read one by one (%d not listed, %d without usage in the listing)",
                label,
                len(rest),
                len(rest) - without_usage,
                without_usage,
                extra=ctx(
                    panel_id=self._panel.id,
                    users=len(rest),
                    not_listed=len(rest) - without_usage,
                    without_usage=without_usage,
                ),
            )
        self._read_singly(rest, listing, batch, results)
        self._log_budget(label, results, batch)

    def _read_listing(self, wanted: Set[str], batch: Batch) -> Listing:
        dialect = self._dialect()
        listing = Listing()
        lock = threading.Lock()
        began = time.monotonic()

        def fetch(number: int) -> Page | None:
            """Fetch, read and merge one page; None when it failed (noted in `listing`)."""
            path, params = dialect.request(number)
            outcome = self._page(dialect, path, params, number, batch)
            if isinstance(outcome, Page):
                found = list(dialect.read_items(outcome.items, wanted))
                with lock:  # pages merge as they arrive: a later arrival wins
                    listing.results.update(found)
                    listing.users += len(outcome.items)
                    listing.pages += 1
                return outcome
            reason = outcome if isinstance(outcome, str) else outcome.reason
            with lock:
                if listing.failure is None:
                    listing.failure = f"page {number}: {reason}"
                if isinstance(outcome, TransportProblem) and not outcome.out_of_time:
                    listing.unreachable = listing.unreachable or outcome
            return None

        def fetch_later(number: int) -> None:
            fetch(number)

        first = fetch(1)
        if first is not None and first.pages > 1:
            batch.run(list(range(2, first.pages + 1)), fetch_later)
        context: dict[str, object] = {
            "panel_id": self._panel.id,
            "users": listing.users,
            "pages": listing.pages,
            "seconds": round(time.monotonic() - began, 3),
        }
        if listing.failure is None:
            logger.info(
                "%s users listed: %d users in %d %s",
                dialect.label,
                listing.users,
                listing.pages,
                "page" if listing.pages == 1 else "pages",
                extra=ctx(**context),
            )
        else:
            logger.warning(
                "%s users listing failed; reading the users it did not give one by one",
                dialect.label,
                extra=ctx(**context, reason=listing.failure),
            )
        return listing

    def _page(
        self,
        dialect: ListingDialect,
        path: str,
        params: QueryParams,
        number: int,
        batch: Batch,
    ) -> Page | str | TransportProblem:
        """Page `number`, or why it could not be had (a reason or a transport problem)."""
        sent = self._get_page(path, params, batch)
        if isinstance(sent, HardFailure):
            return sent.reason
        if isinstance(sent, TransportProblem):
            return sent
        if not sent.ok:
            return self.http_failure(sent).reason
        decoded = decode_json(sent)
        if isinstance(decoded, NotJson):
            return decoded.reason
        page = dialect.read_page(decoded, number)
        return self._redactor.scrub(page) if isinstance(page, str) else page

    def _read_singly(
        self, names: list[str], listing: Listing, batch: Batch, results: dict[str, UsageResult]
    ) -> None:
        if not names:
            return
        if listing.unreachable is not None:
            probe = self._single_within(names[0], batch)
            results[names[0]] = probe.result
            names = names[1:]
            if probe.unreachable and names:
                logger.warning(
                    "%s unreachable: %d more users not read",
                    self._dialect().label,
                    len(names),
                    extra=ctx(
                        panel_id=self._panel.id, users=len(names), reason=listing.unreachable.reason
                    ),
                )
                results.update(dict.fromkeys(names, probe.result))
                return

        def read(name: str) -> None:
            results[name] = self._single_within(name, batch).result

        batch.run(names, read)
        for name in names:  # an unexpected error in `read` leaves a gap
            results.setdefault(name, HardFailure("unexpected error while reading the user"))

    def _single_within(self, name: str, batch: Batch) -> Single:
        if batch.out_of_time():
            return Single(BUDGET_FAILURE)
        return self._single(name, batch)

    def _log_budget(self, label: str, results: Mapping[str, UsageResult], batch: Batch) -> None:
        unread = sum(result == BUDGET_FAILURE for result in results.values())
        if unread:
            logger.warning(
                "%s time budget ran out: %d users not read",
                label,
                unread,
                extra=ctx(panel_id=self._panel.id, users=unread, budget_s=batch.options.budget_s),
            )


def matching_items(
    items: Iterable[object],
    wanted: Set[str],
    key: str,
    parse: Callable[[dict[str, object]], UsageResult],
) -> Iterator[tuple[str, UsageResult]]:
    """Each listed item whose `key` names a wanted user, with its parsed reading."""
    for item in items:
        if isinstance(item, dict):
            name = item.get(key)
            if isinstance(name, str) and name in wanted:
                yield name, parse(item)


def page_count(total: int, size: int) -> int:
    """Pages of `size` needed for `total` items (at least one)."""
    return max(1, -(-total // size))
