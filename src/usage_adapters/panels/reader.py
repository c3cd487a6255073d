"""The one reader that drives every panel dialect: `fetch_usage` and `fetch_many`.

A batch of users (`fetch_many`) is read the same way on every panel:

1. its login, once (static keys need none);
2. the read strategy (`usage_core.read_strategy`): on a panel with an exact
   username filter (`SelectiveListing`), exact batches of names, the full
   listing or single reads, whichever asks the panel to serialize the fewest
   users; a one-item page tells the panel's `total` when the choice depends
   on it. A panel that says its `total` but has no such filter
   (`CountedListing`: Remnawave) is listed or read singly by the same rule.
   `extra.usage_sync_read_strategy` forces one. Other panels are listed;
3. the bulk listing, its pages fetched concurrently where it pages (at most
   the panel type's page concurrency: Marzban one; one after the other where
   each page names the next: a keyset listing), or the batches, keeping
   only the requested users. A user listed twice with different readings (the
   listing changed between pages) is read singly instead; whatever `total` a
   panel claims, no more than `MAX_LISTING_PAGES` pages are asked for, and
   none after a page that came back empty;
4. a single read for each requested user the listing or its batch did not
   return, whose list item has no usable usage field, or, when the listing
   or a batch failed (HTTP error, timeout, malformed JSON, unexpected shape),
   that it would have covered: pages and batches that completed are kept.

Pages and single reads run on a thread pool of the panel's concurrency
(`ReadOptions.concurrency`), sharing the session's `httpx.Client`, whose
pool is sized for it. Logins are shared: one login for the batch however many
threads need it, and one shared re-login when requests meet a rejected
credential (at most one re-login per batch).

Time budget: a batch stops starting requests once `ReadOptions.budget_s`
has passed; requests under way have their timeouts cut to the time left.
Users not read by then get `HardFailure("the panel's time budget ran out")`.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import quote

import attrs

from usage_adapters.panels.dialect import (
    Annotates,
    CountedListing,
    Listing,
    Page,
    PanelDialect,
    Requester,
    SelectiveListing,
    WholeListing,
)
from usage_adapters.panels.http import (
    OUT_OF_TIME,
    Decode,
    HttpChannel,
    NotJson,
    QueryParams,
    Reply,
    Sent,
    TransportProblem,
    decode_json,
)
from usage_adapters.panels.json_stream import Elements, decode_arriving
from usage_adapters.panels.kept_logins import LoginKeeper, session_logins
from usage_adapters.panels.login import Credential, LoginAllowance, SharedLogin
from usage_adapters.panels.options import MAX_LISTING_PAGES, ReadOptions
from usage_core.log import ctx
from usage_core.read_strategy import (
    ReadCosts,
    ReadPlan,
    ReadStrategy,
    batches_of,
    choose,
    needs_total,
    plan_for,
)
from usage_core.readings import CounterReading, HardFailure, RemoteResult, UsageResult

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

BUDGET_FAILURE = HardFailure(OUT_OF_TIME)
NO_USERNAME = HardFailure("the config has no panel username")
# A panel without an exact filter or a `total`: its listing, or single reads when forced.
NO_FILTER = ReadCosts()
# Characters of `username=` parameters one batch may carry once encoded: with the
# panel's URL, well inside the 8 KiB request line nginx accepts.
MAX_BATCH_QUERY_CHARS = 4000


def batch_query_chars(name: str) -> int:
    """What one name adds to a batch's query: `username=<encoded>&`."""
    return len("username=&") + len(quote(name, safe=""))


class Batch(LoginAllowance):
    """One `fetch_many` call: its deadline, thread pool and login allowance."""

    def __init__(self, options: ReadOptions) -> None:
        super().__init__(time.monotonic() + options.budget_s)
        self.options = options
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
        return self.deadline is not None and time.monotonic() >= self.deadline

    def run(
        self, items: Sequence[_T], work: Callable[[_T], None], limit: int | None = None
    ) -> None:
        """Call `work(item)` for every item, at most `concurrency` (or `limit`) at a time.

        `work` must not raise; an exception escaping it is logged and that
        item is skipped.
        """
        if not items:
            return
        workers = min(limit or self.options.concurrency, self.options.concurrency, len(items))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.options.concurrency, "panel-read")
        pending = iter(items)
        lock = threading.Lock()
        done = object()

        def loop() -> None:
            while True:
                with lock:
                    item = next(pending, done)
                if item is done:
                    return
                try:
                    work(item)  # type: ignore[arg-type]
                except Exception:
                    logger.exception("Panel read: unexpected error")

        for future in [self._pool.submit(loop) for _ in range(workers)]:
            future.result()


@attrs.define
class ListingResult:
    """What the listing gave: readings, size, and what went wrong."""

    results: dict[str, UsageResult] = attrs.field(factory=dict)
    users: int = 0
    pages: int = 0
    failure: str | None = None
    unreachable: TransportProblem | None = None
    # Users listed twice with different readings (the listing moved under its pages).
    conflicting: set[str] = attrs.field(factory=set)
    # Pages and batches are taken from several threads.
    lock: threading.Lock = attrs.field(factory=threading.Lock, eq=False, repr=False)

    def merge(self, found: Iterable[tuple[str, UsageResult]]) -> None:
        """Add a page's readings; a user listed again with another reading is in conflict."""
        results, conflicting = self.results, self.conflicting
        for name, result in found:
            earlier = results.setdefault(name, result)
            # Identity first: comparing a reading with itself field by field costs more.
            if earlier is not result and earlier != result:
                conflicting.add(name)

    def take(
        self,
        reply: Page | str | TransportProblem,
        where: str,
        wanted: Wanted,
        listing: Listing,
    ) -> Page | None:
        """Add a page's (or batch's) wanted users, or note why `where` failed; the page or None."""
        if isinstance(reply, Page):
            found = list(matching_items(reply.items, wanted, listing))
            with self.lock:
                self.merge(found)
                self.users += len(reply.items)
                self.pages += 1
            return reply
        reason = reply if isinstance(reply, str) else reply.reason
        with self.lock:
            self.failure = self.failure or f"{where}: {reason}"
            if isinstance(reply, TransportProblem) and reply.unreachable:
                self.unreachable = self.unreachable or reply
        return None

    def out_of_time(self, where: str) -> None:
        """Note that `where` was not asked for: the budget ran out."""
        with self.lock:
            self.failure = self.failure or f"{where}: {OUT_OF_TIME}"

    def usable(self) -> Iterator[tuple[str, UsageResult]]:
        """The readings that need no single read: unambiguous counters with a usage field."""
        conflicting = self.conflicting
        for name, result in self.results.items():
            if (
                isinstance(result, CounterReading)
                and result.has_usage_field
                and name not in conflicting
            ):
                yield name, result


@attrs.frozen
class Single:
    """A single read's result, and whether it failed for want of a reachable panel."""

    result: UsageResult
    unreachable: bool = False


# The names a read wants, each to itself: a listed name is looked up to the caller's string.
Wanted = Mapping[str, str]


def _wanted(names: Iterable[str]) -> Wanted:
    return {name: name for name in names}


def matching_items(
    items: Iterable[object], wanted: Wanted, listing: Listing
) -> Iterator[tuple[str, UsageResult]]:
    """Each listed item whose name is a wanted user, with its reading."""
    read = _listed_reader(wanted, listing)
    for item in items:
        # A tuple was read as the reply was decoded (`listed_elements`): JSON makes none.
        found = item if type(item) is tuple else read(item)
        if found is not _NOT_WANTED:
            yield found  # type: ignore[misc]


# A `WholeListing` reply this large is read as it arrives and is decoded: 121 MB at 250,000
# users of 3x-ui is never held, nor the several times that it takes decoded whole. A
# smaller one is decoded whole, which costs about a fifth less CPU.
READ_AS_DECODED_BYTES = 1 << 20
# A listed item that is not a wanted user: counted as listed, nothing kept.
_NOT_WANTED = object()


def listed_elements(wanted: Wanted, listing: WholeListing) -> Elements:
    """How a `WholeListing` reply is decoded: each element read as `matching_items` reads it."""
    return listing.user_arrays, _listed_reader(wanted, listing), listing.unread_values


def _listed_reader(wanted: Wanted, listing: Listing) -> Callable[[object], object]:
    """A listed item's (name, reading) when it is a wanted user; else `_NOT_WANTED`."""
    key, read = listing.item_key, listing.read_item
    own = wanted.get

    def listed(item: object) -> object:
        if isinstance(item, dict):
            name = item.get(key)
            # The caller's own string: the reply's copy is dropped with the reply.
            name = own(name) if isinstance(name, str) else None
            if name is not None:
                return name, read(item)
        return _NOT_WANTED

    return listed


class PanelReader:
    """The `PanelSession` of every panel type, driven by the panel's dialect.

    Logs in lazily and reuses the credential for every user of the session.
    A rejected credential on a single read triggers one re-login and one
    retry, unless the credential was obtained during that same read. A login
    the panel refused is remembered: later reads fail at once. A login that
    failed in transit or with a 5xx is tried again by the next read. With
    `logins`, the login is kept across sessions and runs (`kept_logins`).
    Safe to share between threads.
    """

    def __init__(
        self,
        channel: HttpChannel,
        dialect: PanelDialect,
        options: ReadOptions,
        logins: LoginKeeper | None = None,
    ) -> None:
        self._http = channel
        self._dialect = dialect
        self._options = options
        self._auth = dialect.auth
        self._login = SharedLogin(
            lambda deadline: self._auth.log_in(self._http, deadline),
            self._auth.on_relogin,
            session_logins(logins, channel, self._auth),
        )
        # The index in `user_paths` of the route that answered, once one has.
        self._route: int | None = None

    @property
    def panel_id(self) -> int:
        """The id of the session's panel."""
        return self._http.panel.id

    def close(self) -> None:
        """Release the session's connections."""
        self._http.close()

    # -- authenticated requests ----------------------------------------------------

    def _credential(self, batch: LoginAllowance | None) -> Credential | HardFailure:
        if not self._auth.needs_login:
            return Credential(None, fresh=False)
        return self._login.current(batch)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams = (),
        json_body: object = None,
        batch: LoginAllowance | None = None,
        username: str | None = None,
        listing: bool = False,
        decode: Decode | None = None,
        route_known: bool = True,
        renew: bool = True,
        route_lost: Callable[[], Sent | HardFailure] | None = None,
    ) -> Sent | HardFailure:
        """One authenticated request; a rejected credential is renewed once and retried.

        A credential obtained during this very request is not renewed outside
        a batch: the rejection is then the panel's answer; with `renew` false
        it is never renewed. When the rejection was a 404 (a route that
        worked before), `route_lost` replaces sending the same request again.
        With `decode`, a large reply is decoded as it arrives (`HttpChannel.send`).
        """
        credential = self._credential(batch)
        if isinstance(credential, HardFailure):
            return credential

        def send(with_credential: Credential) -> Sent:
            return self._send(
                method,
                path,
                with_credential,
                params=params,
                json_body=json_body,
                batch=batch,
                listing=listing,
                decode=decode,
            )

        sent = send(credential)
        if not (isinstance(sent, Reply) and self._auth.lost(sent, route_known)):
            return sent
        fresh_is_final = batch is None or not batch.renew_fresh
        if not (renew and self._auth.needs_login) or (fresh_is_final and credential.fresh):
            return sent
        renewed = self._login.renew(credential.value, batch, username)
        if renewed is None:
            return sent
        if isinstance(renewed, HardFailure):
            return renewed
        if route_lost is not None and sent.status == 404:
            return route_lost()
        return send(renewed)

    def _send(
        self,
        method: str,
        path: str,
        credential: Credential,
        *,
        params: QueryParams,
        json_body: object,
        batch: LoginAllowance | None,
        listing: bool,
        decode: Decode | None,
    ) -> Sent:
        return self._http.send(
            method,
            path,
            params=params or None,
            json_body=json_body,
            headers=self._auth.headers(credential.value),
            deadline=batch.deadline if batch is not None else None,
            max_bytes=self._options.max_listing_bytes if listing else None,
            decode=decode,
            decode_from=READ_AS_DECODED_BYTES,
        )

    # -- set-state writes -----------------------------------------------------------

    def set_enabled(self, username: str, enabled: bool) -> RemoteResult:
        """Put the user in the wanted state through the dialect; never raises."""
        problem = self._auth.problem()
        if problem is not None:
            return RemoteResult(False, problem)
        if not username:
            return RemoteResult(False, NO_USERNAME.reason)
        api = self._requester(self._one_user(), username)
        try:
            result = self._dialect.set_enabled(api, username, enabled)
        except Exception:  # a dialect bug must fail this user, not the run
            logger.exception("%s: unexpected error while setting %s", self._dialect.label, username)
            return RemoteResult(False, "unexpected error while setting the user's state")
        return attrs.evolve(result, detail=self._http.redactor.scrub(result.detail or ""))

    def _requester(self, allowance: LoginAllowance, username: str | None) -> Requester:
        """Authenticated requests within `allowance`, for a dialect's own calls."""

        def api(
            method: str,
            path: str,
            *,
            params: QueryParams = (),
            json_body: object = None,
            probe: bool = False,
        ) -> Sent | HardFailure:
            return self.request(
                method,
                path,
                params=params,
                json_body=json_body,
                batch=allowance,
                username=username,
                route_known=not probe,
            )

        return api

    def _annotated(
        self, results: dict[str, UsageResult], allowance: LoginAllowance
    ) -> dict[str, UsageResult]:
        """`results` with the dialect's notes, where it has any (see `Annotates`)."""
        dialect = self._dialect
        if not isinstance(dialect, Annotates):
            return results
        if not any(isinstance(result, CounterReading) for result in results.values()):
            return results
        try:
            return dialect.annotate(self._requester(allowance, None), results)
        except Exception:  # a note must never cost the readings
            logger.exception("%s: unexpected error while annotating readings", dialect.label)
            return results

    # -- one user -------------------------------------------------------------------

    def _one_user(self) -> LoginAllowance:
        """The allowance of one user's read or write: its own deadline, login included."""
        deadline = time.monotonic() + self._options.single_budget_s
        return LoginAllowance(deadline, renew_fresh=False)

    def fetch_usage(self, username: str) -> UsageResult:
        """The user's counter from its single-user route, or a hard failure."""
        allowance = self._one_user()
        result = self._single(username, allowance).result
        return self._annotated({username: result}, allowance)[username]

    def _single(self, username: str, batch: LoginAllowance | None) -> Single:
        problem = self._auth.problem()
        if problem is not None:
            return Single(HardFailure(problem))
        if not username:
            return Single(NO_USERNAME)
        sent = self._read_user(username, batch)
        if isinstance(sent, HardFailure):
            return Single(sent)
        result = self._interpret(username, sent)
        if isinstance(result, CounterReading):
            self._dialect.log_reading(username, result)
        unreachable = isinstance(sent, TransportProblem) and sent.unreachable
        return Single(result, unreachable=unreachable)

    def _read_user(self, username: str, batch: LoginAllowance | None) -> Sent | HardFailure:
        """GET the user from the route that answered before, or find that route."""
        paths = self._dialect.user_paths(username)
        known = self._route
        if known is None:
            return self._find_user_route(username, paths, batch)

        def look_again() -> Sent | HardFailure:
            # A 404 from the route that worked: the panel may have been upgraded.
            self._route = None
            return self._find_user_route(username, paths, batch, renew=False)

        return self.request(
            "GET", paths[known], batch=batch, username=username, route_lost=look_again
        )

    def _find_user_route(
        self,
        username: str,
        paths: Sequence[str],
        batch: LoginAllowance | None,
        *,
        renew: bool = True,
    ) -> Sent | HardFailure:
        sent: Sent | HardFailure = HardFailure("the panel has no user route")
        for index, path in enumerate(paths):
            sent = self.request(
                "GET", path, batch=batch, username=username, route_known=False, renew=renew
            )
            if isinstance(sent, Reply) and sent.status == 404 and index + 1 < len(paths):
                continue
            if isinstance(sent, Reply) and sent.ok and self._route is None:
                if index > 0:
                    logger.info(
                        "%s: %s not found; reading users from %s",
                        self._dialect.label,
                        paths[0].removesuffix(username),
                        path.removesuffix(username),
                        extra=ctx(panel_id=self.panel_id),
                    )
                self._route = index
            break
        return sent

    def _interpret(self, username: str, sent: Sent) -> UsageResult:
        """A user-read reply as a counter, or a logged, scrubbed hard failure."""
        wording = self._dialect.wording
        if isinstance(sent, TransportProblem):
            logger.error(wording.exception, extra=ctx(message=sent.message, username=username))
            return HardFailure(sent.reason)
        if not sent.ok:
            logger.warning(
                wording.failed,
                extra=ctx(
                    status=sent.status, username=username, body_preview=self._http.preview(sent)
                ),
            )
            return self._http.http_failure(sent)
        decoded = decode_json(sent)
        if isinstance(decoded, NotJson):
            result: UsageResult = HardFailure(decoded.reason)
        else:
            result = self._dialect.parse_user(decoded)
        if isinstance(result, HardFailure):
            reason = self._http.redactor.scrub(result.reason)
            logger.warning(wording.unusable, extra=ctx(username=username, reason=reason))
            return HardFailure(reason)
        return result

    # -- many users -----------------------------------------------------------------

    def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
        """A result for every name: the listing where it serves, single reads otherwise."""
        names = list(dict.fromkeys(usernames))
        results: dict[str, UsageResult] = {}
        wanted = [name for name in names if name]
        if len(wanted) < len(names):
            results[""] = NO_USERNAME
        problem = self._auth.problem() if wanted else None
        if problem is not None:
            results.update(dict.fromkeys(wanted, HardFailure(problem)))
            wanted = []
        if wanted:
            with Batch(self._options) as batch:
                self._read_batch(wanted, batch, results)
                results = self._annotated(results, batch)
        return {name: results[name] for name in names}

    def _read_batch(self, wanted: list[str], batch: Batch, results: dict[str, UsageResult]) -> None:
        login = self._credential(batch)
        if isinstance(login, HardFailure):
            results.update(dict.fromkeys(wanted, BUDGET_FAILURE if batch.out_of_time() else login))
            self._log_budget(results, batch)
            return
        plan, batches, unreachable = self._choose(wanted, batch)
        if unreachable is not None:
            # The probe could not reach the panel: the listing would not either.
            listing = ListingResult(failure=unreachable.reason, unreachable=unreachable)
        elif plan.strategy is ReadStrategy.SINGLES:
            listing = ListingResult()
        elif plan.strategy is ReadStrategy.BATCHES:
            listing = self._read_batches(batches, _wanted(wanted), batch)
        else:
            listing = self._read_listing(_wanted(wanted), batch)
        results.update(listing.usable())
        rest = [name for name in wanted if name not in results]
        if rest and listing.failure is None and plan.strategy is not ReadStrategy.SINGLES:
            without_usage = sum(name in listing.results for name in rest)
            logger.info(
                "%s: %d users read one by one (%d not listed, %d without usage in the listing)",
                self._dialect.label,
                len(rest),
                len(rest) - without_usage,
                without_usage,
                extra=ctx(
                    panel_id=self.panel_id,
                    users=len(rest),
                    not_listed=len(rest) - without_usage,
                    without_usage=without_usage,
                ),
            )
        listing.results.clear()  # its readings are in `results` now
        self._read_singly(rest, listing, batch, results)
        self._log_budget(results, batch)

    # -- the read strategy ------------------------------------------------------------

    def _page_concurrency(self) -> int | None:
        listing = self._dialect.listing
        own = listing.page_concurrency if isinstance(listing, CountedListing) else None
        return self._options.page_concurrency or own

    def _choose(
        self, wanted: Sequence[str], batch: Batch
    ) -> tuple[ReadPlan, list[tuple[str, ...]], TransportProblem | None]:
        """The read plan for `wanted`, its batches of names, and a probe that found no panel.

        The panel's `total` is probed only when the choice depends on it.
        """
        listing = self._dialect.listing
        forced = self._options.strategy
        if not isinstance(listing, CountedListing):
            fallback = ReadStrategy.SINGLES if forced is ReadStrategy.SINGLES else None
            plan = choose(needed=len(wanted), total=None, costs=NO_FILTER, forced=fallback)
            return plan, [], None
        costs = listing.costs
        batches: list[tuple[str, ...]] = []
        if isinstance(listing, SelectiveListing):
            batches = batches_of(
                wanted,
                size=costs.batch_size,
                max_chars=MAX_BATCH_QUERY_CHARS,
                chars=batch_query_chars,
                least=listing.least_batch,
            )
        total: int | None = None
        if forced is None and needs_total(len(batches), costs):
            probed = self._probe_total(listing, batch)
            if isinstance(probed, TransportProblem) and probed.unreachable:
                return (
                    plan_for(ReadStrategy.LISTING, needed=len(wanted), total=None, costs=costs),
                    [],
                    probed,
                )
            total = probed if isinstance(probed, int) else None
        plan = choose(
            needed=len(wanted),
            total=total,
            costs=costs,
            batch_requests=len(batches),
            forced=forced,
        )
        # A listing of an unknown size takes as many pages as the panel turns out to have.
        known = total is not None or plan.strategy is not ReadStrategy.LISTING
        requests = "request" if plan.requests == 1 else "requests"
        logger.info(
            "%s read as %s: %d users wanted of %s%s",
            self._dialect.label,
            plan.strategy.value,
            len(wanted),
            "an unknown number" if total is None else total,
            f", {plan.requests} {requests}" if known else "",
            extra=ctx(
                panel_id=self.panel_id,
                strategy=plan.strategy.value,
                forced=forced is not None,
                wanted=len(wanted),
                total=total,
                requests=plan.requests if known else None,
                users_serialized=plan.users if known else None,
            ),
        )
        return plan, batches, None

    def _probe_total(self, listing: CountedListing, batch: Batch) -> int | TransportProblem | None:
        """How many users the panel holds, from a one-item page; why not, when it would not say.

        None for a reply without a usable `total`; the transport problem when
        no reply came.
        """
        path, params = listing.probe()
        reply = self._listing_reply(path, params, batch, listing.read_total)
        if isinstance(reply, int):
            return reply
        reason = reply if isinstance(reply, str) else reply.reason
        logger.warning(
            "%s did not say how many users it has; choosing without it",
            self._dialect.label,
            extra=ctx(panel_id=self.panel_id, reason=reason),
        )
        return reply if isinstance(reply, TransportProblem) else None

    def _read_batches(
        self, batches: Sequence[tuple[str, ...]], wanted: Wanted, batch: Batch
    ) -> ListingResult:
        """The users of each batch of names, by the panel's exact filter."""
        listing = self._dialect.listing
        assert isinstance(listing, SelectiveListing)  # noqa: S101 - `_choose` made batches
        outcome = ListingResult()
        began = time.monotonic()
        numbered = list(enumerate(batches, start=1))

        def fetch(numbered_batch: tuple[int, tuple[str, ...]]) -> None:
            number, names = numbered_batch
            if batch.out_of_time():
                outcome.out_of_time(f"batch {number}")
                return
            path, params = listing.batch(names)
            reply = self._listing_reply(
                path, params, batch, lambda decoded: listing.read_page(decoded, 1)
            )
            outcome.take(reply, f"batch {number}", wanted, listing)

        batch.run(numbered, fetch, self._page_concurrency())
        self._log_outcome(
            outcome,
            began,
            unit="request",
            done="%s users read by name: %d users in %d %s",
            failed="%s users read by name: a batch failed; reading its users one by one",
        )
        return outcome

    def _log_outcome(
        self, outcome: ListingResult, began: float, *, unit: str, done: str, failed: str
    ) -> None:
        """One line for a listing or its batches: their size, or why they failed."""
        context: dict[str, object] = {
            "panel_id": self.panel_id,
            "users": outcome.users,
            f"{unit}s": outcome.pages,
            "seconds": round(time.monotonic() - began, 3),
        }
        if outcome.failure is None:
            noun = unit if outcome.pages == 1 else f"{unit}s"
            args = (self._dialect.label, outcome.users, outcome.pages, noun)
            logger.info(done, *args, extra=ctx(**context))
        else:
            logger.warning(
                failed, self._dialect.label, extra=ctx(**context, reason=outcome.failure)
            )

    def _read_listing(self, wanted: Wanted, batch: Batch) -> ListingResult:
        listing = self._dialect.listing
        outcome = ListingResult()
        began = time.monotonic()

        def fetch(number: int, request: tuple[str, QueryParams] | None = None) -> Page | None:
            """Fetch, read and merge one page; None when it failed (noted in `outcome`)."""
            page = self._page(number, batch, wanted, request)
            return outcome.take(page, f"page {number}", wanted, listing)

        ended = threading.Event()

        def fetch_later(number: int) -> None:
            # Past the budget no page is asked for; past an empty page neither: the
            # listing ended sooner than its `total` said.
            if batch.out_of_time():
                outcome.out_of_time(f"page {number}")
                return
            if not ended.is_set():
                page = fetch(number)
                if page is not None and not page.items:
                    ended.set()

        first = fetch(1)
        if first is not None and first.next_request is not None:
            failure = self._follow_keyset(first, fetch, batch)
            outcome.failure = outcome.failure or failure
        elif first is not None and first.pages > 1:
            # A `total` no panel has (2^63 - 1, 10^30) must not become that many pages.
            last = min(first.pages, MAX_LISTING_PAGES)
            batch.run(range(2, last + 1), fetch_later, self._page_concurrency())
        if outcome.conflicting:
            logger.warning(
                "%s listed %d users twice with different counters; reading them one by one",
                self._dialect.label,
                len(outcome.conflicting),
                extra=ctx(panel_id=self.panel_id, users=len(outcome.conflicting)),
            )
        self._log_outcome(
            outcome,
            began,
            unit="page",
            done="%s users listed: %d users in %d %s",
            failed="%s users listing failed; reading the users it did not give one by one",
        )
        return outcome

    @staticmethod
    def _follow_keyset(
        first: Page,
        fetch: Callable[[int, tuple[str, QueryParams]], Page | None],
        batch: Batch,
    ) -> str | None:
        """Fetch a keyset listing's pages after `first`, one by one; why it stopped early.

        A page that fails ends the listing (its failure is noted by `fetch`); so
        do an empty page, a cursor that comes back again, and the page cap.
        """
        page: Page | None = first
        number = 1
        asked: set[tuple[str, QueryParams]] = set()
        while page is not None and page.next_request is not None and page.items:
            request = page.next_request
            if request in asked:
                return f"page {number + 1}: the listing's cursor did not move on"
            if number >= MAX_LISTING_PAGES:
                return f"page {number + 1}: more than {MAX_LISTING_PAGES} pages"
            if batch.out_of_time():
                return f"page {number + 1}: {OUT_OF_TIME}"
            asked.add(request)
            number += 1
            page = fetch(number, request)
        return None

    def _page(
        self,
        number: int,
        batch: Batch,
        wanted: Wanted,
        request: tuple[str, QueryParams] | None = None,
    ) -> Page | str | TransportProblem:
        """Page `number` (by `request` when given), or why it could not be had."""
        listing = self._dialect.listing
        path, params = request or listing.request(number)
        elements = listed_elements(wanted, listing) if isinstance(listing, WholeListing) else None
        return self._listing_reply(
            path, params, batch, lambda decoded: listing.read_page(decoded, number), elements
        )

    def _listing_reply(
        self,
        path: str,
        params: QueryParams,
        batch: Batch,
        read: Callable[[object], _R | str],
        elements: Elements | None = None,
    ) -> _R | str | TransportProblem:
        """A listing-route reply read by `read`, or why it could not be had.

        With `elements`, a large reply is read as it arrives and is decoded.
        """
        decode: Decode | None = None
        if elements is not None:
            arrays, element, unread = elements

            def decode(chunks: Iterator[bytes]) -> object:
                return decode_arriving(chunks, arrays, element, unread)

        sent = self.request("GET", path, params=params, batch=batch, listing=True, decode=decode)
        if isinstance(sent, HardFailure):
            return sent.reason
        if isinstance(sent, TransportProblem):
            return sent
        if not sent.ok:
            return self._http.http_failure(sent).reason
        # Decoded as it arrived, or (a smaller reply) decoded whole now.
        decoded = decode_json(sent)
        if isinstance(decoded, NotJson):
            return decoded.reason
        read_back = read(decoded)
        return self._http.redactor.scrub(read_back) if isinstance(read_back, str) else read_back

    def _read_singly(
        self,
        names: list[str],
        listing: ListingResult,
        batch: Batch,
        results: dict[str, UsageResult],
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
                    self._dialect.label,
                    len(names),
                    extra=ctx(
                        panel_id=self.panel_id,
                        users=len(names),
                        reason=listing.unreachable.reason,
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

    def _log_budget(self, results: Mapping[str, UsageResult], batch: Batch) -> None:
        unread = sum(result == BUDGET_FAILURE for result in results.values())
        if unread:
            logger.warning(
                "%s time budget ran out: %d users not read",
                self._dialect.label,
                unread,
                extra=ctx(panel_id=self.panel_id, users=unread, budget_s=batch.options.budget_s),
            )
