"""Eylandoo: a static `X-API-KEY` header, `GET /api/v1/users/{username}` and `list_all`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Set

import attrs
import httpx

from usage_adapters.panels.bulk import (
    NO_USERNAME,
    Batch,
    BulkOptions,
    BulkSession,
    Fetched,
    ListingDialect,
    Page,
    Single,
    matching_items,
)
from usage_adapters.panels.transport import (
    FetchWording,
    QueryParams,
    TransportProblem,
    header_safe,
    path_segment,
)
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.readings import (
    CounterReading,
    HardFailure,
    UsageResult,
    parse_eylandoo_user,
)

logger = logging.getLogger(__name__)

_WORDING = FetchWording.for_label("Eylandoo")
LIST_ALL_ROUTE = "/api/v1/users/list_all"
_PREVIEW = 200


@attrs.frozen
class _EylandooListing:
    """`GET /api/v1/users/list_all`: everyone at once, in any of its documented shapes."""

    label: str = "Eylandoo"

    def request(self, number: int) -> tuple[str, QueryParams]:
        return LIST_ALL_ROUTE, ()

    def read_page(self, decoded: object, number: int) -> Page | str:
        groups = list_all_groups(decoded)
        if isinstance(groups, str):
            return groups
        return Page([item for group in groups for item in group], 1)

    def read_items(
        self, items: Iterable[object], wanted: Set[str]
    ) -> Iterator[tuple[str, UsageResult]]:
        return matching_items(items, wanted, "username", read_list_item)


def list_all_groups(decoded: object) -> list[list[object]] | str:
    """The user lists of a `list_all` reply, or why it is not one.

    Shapes (panel-apis.md §1): `users` (v3.1.3, sub-admin keys), `data.users`
    (Oct 2025), `main_admin.users` (v3.0.0) or `main_admin_users`
    (v1.1.6/v2.0.0), each with `sub_admins[].users` beside it for a main key.
    """
    if not isinstance(decoded, dict):
        return "the reply is not a JSON object"
    if decoded.get("success") is False:
        message = decoded.get("message")
        return f"the panel replied success: false: {str(message)[:_PREVIEW]}"
    data, main = decoded.get("data"), decoded.get("main_admin")
    candidates: list[object] = [
        decoded.get("users"),
        data.get("users") if isinstance(data, dict) else None,
        main.get("users") if isinstance(main, dict) else None,
        decoded.get("main_admin_users"),
    ]
    subs = decoded.get("sub_admins")
    if isinstance(subs, list):
        candidates.extend(sub.get("users") for sub in subs if isinstance(sub, dict))
    groups = [group for group in candidates if isinstance(group, list)]
    if not groups and not isinstance(subs, list):
        return "the reply has no users list"
    return groups


def read_list_item(item: dict[str, object]) -> UsageResult:
    """A `list_all` item's counter, by the core's single-user precedence.

    Oct-2025 items carry `data_used` at their root, where that version's
    single-user reply has it under `data`: such an item is read as that reply
    would be (`data.data_used`). An item without any usage field reads 0
    from path `none`, which the caller replaces by a single read.
    """
    result = parse_eylandoo_user(item)
    if isinstance(result, CounterReading) and not result.has_usage_field and "data_used" in item:
        return parse_eylandoo_user({"data": item})
    return result


class EylandooSession(BulkSession):
    """Reads usage from an Eylandoo panel; no login, the API key goes on every call.

    `fetch_many` asks `list_all` once; list items without a usage field and
    users it does not list are read one by one. Per-user log lines ("Eylandoo
    usage from ...") belong to the single reads only.
    """

    def __init__(
        self,
        panel: Panel,
        client: httpx.Client,
        max_body_bytes: int,
        bulk: BulkOptions | None = None,
    ) -> None:
        super().__init__(panel, client, max_body_bytes, bulk or BulkOptions())
        self._api_key = panel.api_token.reveal() if panel.api_token else ""
        self._listing = _EylandooListing()

    def _unusable(self) -> HardFailure | None:
        if not self._api_key:
            return HardFailure("the panel has no API token")
        if not header_safe(self._api_key):
            return HardFailure("the panel's API token has characters a header cannot carry")
        return None

    def _dialect(self) -> ListingDialect:
        return self._listing

    def _get_page(self, path: str, params: QueryParams, batch: Batch) -> Fetched:
        return self.send(
            "GET",
            path,
            headers={"X-API-KEY": self._api_key, "Accept": "application/json"},
            deadline=batch.deadline,
            max_bytes=self._bulk.max_listing_bytes,
        )

    def _single(self, username: str, batch: Batch | None) -> Single:
        """The user's counter by the core's Eylandoo precedence, or a hard failure."""
        failure = self._unusable()
        if failure is not None:
            return Single(failure)
        if not username:
            return Single(NO_USERNAME)
        sent = self.send(
            "GET",
            f"/api/v1/users/{path_segment(username)}",
            headers={"X-API-KEY": self._api_key, "Accept": "application/json"},
            deadline=batch.deadline if batch is not None else None,
        )
        result = self.interpret(username, sent, parse_eylandoo_user, _WORDING, logger)
        if isinstance(result, CounterReading):
            _log_reading(username, result)
        unreachable = isinstance(sent, TransportProblem) and not sent.out_of_time
        return Single(result, unreachable=unreachable)


def _log_reading(username: str, reading: CounterReading) -> None:
    """Say where the counter came from, in the original service's words."""
    if reading.path == "none":
        logger.info(
            "Eylandoo usage: no traffic data fields found, returning 0",
            extra=ctx(username=username),
        )
    elif reading.upload_bytes is not None and reading.download_bytes is not None:
        logger.info(
            "Eylandoo usage from " + reading.path,
            extra=ctx(
                username=username,
                upload_bytes=reading.upload_bytes,
                download_bytes=reading.download_bytes,
                total_usage_bytes=reading.bytes,
            ),
        )
    else:
        logger.info(
            "Eylandoo usage from " + reading.path,
            extra=ctx(username=username, usage_bytes=reading.bytes),
        )
