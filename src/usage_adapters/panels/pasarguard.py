"""PasarGuard (Marzban's successor): a bearer token from `/api/admin/token`,
`GET /api/user/{username}`, the listing `GET /api/users?offset&limit&sort=username`,
and the owning admins' state from `GET /api/admins?usernames=...`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

import attrs

from usage_adapters.panels.auth import PasswordTokenAuth, api_key_auth
from usage_adapters.panels.dialect import Auth, FetchWording, Requester, log_debug_reading
from usage_adapters.panels.http import (
    HttpChannel,
    NotJson,
    QueryParams,
    Reply,
    decode_json,
    path_segment,
)
from usage_adapters.panels.marzban import MarzbanListing, set_status
from usage_adapters.panels.options import ReadOptions
from usage_core.log import ctx
from usage_core.readings import (
    AdminState,
    CounterReading,
    RemoteResult,
    UsageResult,
    parse_pasarguard_admins,
    parse_pasarguard_user,
)

logger = logging.getLogger(__name__)

LABEL = "PasarGuard"
# PasarGuard builds no share links in a listing (`load_sub` is off): pages are cheap.
DEFAULT_PAGE_SIZE = 1000


@attrs.frozen
class PasarGuardListing(MarzbanListing):
    """`GET /api/users` as Marzban's (`{users, total}`), items read with their owner."""

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A listed `UserResponse`, read as a single reply."""
        return parse_pasarguard_user(item)


class PasarGuardDialect:
    """How a PasarGuard session authenticates, reads users and learns their admins' state.

    With the panel row's `api_token`, an API key (v5.1 on) sent as `X-Api-Key`
    with every request; without one, a login with the row's admin username
    and password for a bearer token (kept between runs).
    """

    label = LABEL
    wording = FetchWording.for_label(LABEL)

    def __init__(self, http: HttpChannel, options: ReadOptions) -> None:
        self.http_channel = http
        key = api_key_auth(http.panel, "X-Api-Key")
        self.auth: Auth = key or PasswordTokenAuth(http.panel, LABEL, "/api/admin/token")
        self.listing = PasarGuardListing(max(1, options.page_size or DEFAULT_PAGE_SIZE))
        # Each admin's state, looked up once per session (None: could not be learnt).
        self._admins: dict[str, AdminState | None] = {}
        self._admins_lock = threading.Lock()

    def user_paths(self, username: str) -> Sequence[str]:
        """`/api/user/{username}`."""
        return (f"/api/user/{path_segment(username)}",)

    def parse_user(self, decoded: object) -> UsageResult:
        """`used_traffic`, with `admin.username` as the owner."""
        return parse_pasarguard_user(decoded)

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """A debug line with the counter."""
        log_debug_reading(logger, LABEL, username, reading)

    def set_enabled(self, api: Requester, username: str, enabled: bool) -> RemoteResult:
        """`PUT /api/user/{username}` with only `status`; PasarGuard leaves out fields alone."""
        path = self.user_paths(username)[0]
        return set_status(self.http_channel, api, path, enabled, keep_next_plan=False)

    def annotate(
        self, api: Requester, results: Mapping[str, UsageResult]
    ) -> dict[str, UsageResult]:
        """Mark each reading whose owning admin keeps the user off the nodes, with a log line."""
        owners = {r.owner for r in results.values() if isinstance(r, CounterReading) and r.owner}
        with self._admins_lock:
            unknown = sorted(owners - self._admins.keys())
        if unknown:
            found = self._look_up(api, unknown)
            with self._admins_lock:
                self._admins.update(found)
        marked = dict(results)
        for name, result in results.items():
            if not isinstance(result, CounterReading) or not result.owner:
                continue
            state = self._admins.get(result.owner)
            reason = state.blocks_users if state is not None else None
            if reason is None:
                continue
            logger.warning(
                "PasarGuard user %s cannot connect: %s",
                name,
                reason,
                extra=ctx(username=name, admin=result.owner, panel_id=self.http_channel.panel.id),
            )
            marked[name] = attrs.evolve(result, blocked=reason)
        return marked

    def _look_up(self, api: Requester, owners: list[str]) -> dict[str, AdminState | None]:
        """The owners' states: `GET /api/admins` (exact `usernames`), else `GET /api/admin`.

        Reading other admins needs the `admins: read` permission; without it
        only the session's own admin (`GET /api/admin`) can be checked.
        """
        found: dict[str, AdminState | None] = dict.fromkeys(owners)
        params: QueryParams = (
            *(("usernames", owner) for owner in owners),
            ("limit", len(owners)),
        )
        states = self._admin_states(api("GET", "/api/admins", params=params, probe=True))
        if states is None:
            states = self._admin_states(api("GET", "/api/admin", probe=True))
        if states is None:
            logger.info(
                "PasarGuard: the admins' state could not be read; users of limited admins "
                "are not reported",
                extra=ctx(panel_id=self.http_channel.panel.id, admins=len(owners)),
            )
            return found
        found.update({name: state for name, state in states.items() if name in found})
        return found

    def _admin_states(self, sent: object) -> dict[str, AdminState] | None:
        if not isinstance(sent, Reply) or not sent.ok:
            return None
        decoded = decode_json(sent)
        if isinstance(decoded, NotJson):
            return None
        states = parse_pasarguard_admins(decoded)
        return None if isinstance(states, str) else states
