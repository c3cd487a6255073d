"""The Marzneshin emulator: `/api/admins/token`, `/api/users/{username}`, page/size listing,
and the `/api/users/{username}/disable` and `/enable` routes."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from usage_sandbox.emulator.base import (
    CREATED_AT,
    MARZNESHIN_DEFAULT_PAGE_SIZE,
    MARZNESHIN_MAX_PAGE_SIZE,
    MARZNESHIN_ORDERS,
    Request,
    Response,
    Router,
    dumps,
    json_array,
    json_reply,
    json_text_reply,
)
from usage_sandbox.emulator.marzban import BearerApp, query_ints
from usage_sandbox.emulator.users import EmulatedUser, stable_uuid

# pydantic v2's refusal of an `order_by` outside the panel's enum, as the panel sends it.
ORDER_BY_REFUSAL = "Input should be {} or {}".format(
    ", ".join(f"'{order}'" for order in MARZNESHIN_ORDERS[:-1]), f"'{MARZNESHIN_ORDERS[-1]}'"
)


class _AlreadyInStateError(Exception):
    pass


class MarzneshinApp(BearerApp):
    """Marzneshin: `/api/admins/token`, `/api/users/{username}`, `/api/users?page&size`,
    `POST /api/users/{username}/disable`, `/enable` and `/reset`, `POST /api/users/reset`."""

    kind = "marzneshin"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Users of other admins; while any are set, the login admin is not sudo.
        self._foreign: frozenset[str] = frozenset()
        self._foreign_lock = threading.Lock()

    def give_to_other_admin(self, usernames: Iterable[str]) -> None:
        """Make the login admin a non-sudo one that does not own these users."""
        with self._foreign_lock:
            self._foreign = frozenset(usernames)

    @property
    def is_sudo(self) -> bool:
        """False once some users belong to another admin."""
        with self._foreign_lock:
            return not self._foreign

    def refusal(self, username: str) -> Response | None:
        """`get_user`'s dependency: a non-sudo admin gets 403 for a user it does not own.

        An unknown user is refused the same way (the check runs before the 404).
        """
        with self._foreign_lock:
            foreign = self._foreign
        if not foreign:
            return None
        if username in foreign or self.users.get(username) is None:
            return json_reply({"detail": "You're not allowed"}, 403)
        return None

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/api/admins/token", self.issue_token)
        router.add("GET", "/api/users", self.guard(self.list_users))
        router.add("GET", "/api/users/{username}", self.guard(self.get_user))
        router.add("POST", "/api/users/{username}/disable", self.guard(self.disable_user))
        router.add("POST", "/api/users/{username}/enable", self.guard(self.enable_user))
        router.add("POST", "/api/users/{username}/reset", self.guard(self.reset_user))
        router.add("POST", "/api/users/reset", self.guard(self.reset_all_users))

    def reset_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """`crud.reset_user_data_usage`: `used_traffic` to 0; the stored lifetime column stands."""
        username = params["username"]
        refused = self.refusal(username)
        if refused is not None:
            return refused

        def write(_: EmulatedUser) -> Response:
            try:
                user = self.users.reset_counter(username)
            except KeyError:
                return self.user_not_found(username)
            return json_reply(self.user_body(user, self.users.id_of(username)))

        return self.write_reply(username, write)

    def reset_all_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """`crud.reset_all_users_data_usage`: every `used_traffic` to 0, lifetimes kept; `{}`.

        The panel resets only the calling admin's users, which here are all of
        them; it is a sudo-only route (403 `Access Denied` for the others).
        """
        if not self.is_sudo:
            return json_reply({"detail": "Access Denied"}, 403)
        self.count("writes")
        self.users.reset_every_counter(keep_lifetime=True)
        return json_reply({})

    def disable_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """Clear `enabled`; a user already disabled gets a 409."""
        return self._set_enabled(params["username"], False)

    def enable_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """Set `enabled` (no limit is reset); a user already enabled gets a 409."""
        return self._set_enabled(params["username"], True)

    def _set_enabled(self, username: str, enabled: bool) -> Response:
        refused = self.refusal(username)
        if refused is not None:
            return refused

        def change(user: EmulatedUser) -> EmulatedUser:
            if user.enabled == enabled:
                raise _AlreadyInStateError
            return dataclasses.replace(user, enabled=enabled)

        def write(_: EmulatedUser) -> Response:
            try:
                user = self.users.modify(username, change)
            except KeyError:
                return self.user_not_found(username)
            except _AlreadyInStateError:
                detail = "User is already enabled" if enabled else "User is not enabled"
                return json_reply({"detail": detail}, 409)
            return json_reply(self.user_body(user, self.users.id_of(username)))

        return self.write_reply(username, write)

    def token_reply(self, token: str) -> dict[str, object]:
        return {"access_token": token, "is_sudo": self.is_sudo, "token_type": "bearer"}

    def get_user(self, request: Request, params: Mapping[str, str]) -> Response:
        refused = self.refusal(params["username"])
        if refused is not None:
            return refused
        return self.user_reply(
            params["username"],
            lambda user: json_reply(self.user_body(user, self.users.id_of(user.username))),
        )

    @staticmethod
    def user_body(user: EmulatedUser, user_id: int) -> dict[str, object]:
        key = stable_uuid(user.username)
        reached = bool(user.data_limit) and user.used >= user.data_limit
        active = user.enabled and not reached
        return {
            "id": user_id,
            "username": user.username,
            "used_traffic": user.used,
            "lifetime_used_traffic": user.lifetime,
            "traffic_reset_at": None,
            "data_limit": user.data_limit or None,
            "data_limit_reset_strategy": "no_reset",
            "expire_strategy": "never",
            "expire_date": None,
            "usage_duration": None,
            "activation_deadline": None,
            "is_active": active,
            "activated": active,
            "enabled": user.enabled,
            "expired": False,
            "data_limit_reached": reached,
            "online_at": None,
            "sub_updated_at": None,
            "sub_last_user_agent": None,
            "sub_revoked_at": None,
            "created_at": CREATED_AT,
            "service_ids": [1],
            "owner_username": "admin",
            "subscription_url": f"/sub/{quote(user.username, safe='')}/{key.hex}",
            "key": key.hex,
            "note": user.note,
        }

    def list_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """fastapi-pagination's `Page`: `page` >= 1, `size` 1..100 (422 beyond).

        `order_by=username` and `descending` sort the listing; without
        `order_by` (or with another order, on which the emulator's users
        tie) users come in id order. A repeated `username=` keeps exactly
        those users; a single one is a case-insensitive substring match.
        """
        self.count("list_pages")
        bounds = query_ints(request, "page", "size")
        if isinstance(bounds, Response):
            return bounds
        page = bounds.get("page", 1)
        size = bounds.get("size", MARZNESHIN_DEFAULT_PAGE_SIZE)
        for name, value in (("page", page), ("size", size)):
            if value < 1:
                return json_reply(
                    {"detail": {name: "Input should be greater than or equal to 1"}}, 422
                )
        if size > MARZNESHIN_MAX_PAGE_SIZE:
            return json_reply(
                {"detail": {"size": "Input should be less than or equal to 100"}}, 422
            )
        order_by = request.param("order_by")
        if order_by is not None and order_by not in MARZNESHIN_ORDERS:
            return json_reply({"detail": {"order_by": ORDER_BY_REFUSAL}}, 422)
        faulted = self.begin_page(page)
        if faulted is not None:
            return faulted
        descending = (request.param("descending") or "").lower() in ("true", "1")
        base = "username" if order_by == "username" else "id"
        names = self.listed_names(("-" if descending else "") + base)
        with self._foreign_lock:
            foreign = self._foreign
        if foreign:
            # A non-sudo admin lists its own users only.
            names = tuple(name for name in names if name not in foreign)
        wanted = request.query.get("username")
        if wanted and len(wanted) > 1:
            names = self.exactly(names, wanted)
        elif wanted:
            # One value is `ILIKE '%value%'`: `username=user1` also finds user10..user19.
            part = wanted[0].lower()
            names = tuple(name for name in names if part in name.lower())
        listed = self.users.entries(names[(page - 1) * size : page * size])
        items = self.fragments(listed, "marzneshin", self.user_body)
        pages = math.ceil(len(names) / size)
        query = f"size={size}" + (f"&order_by={order_by}" if order_by else "")
        link = "/api/users?page={}&" + query
        links = {
            "first": link.format(1),
            "last": link.format(max(pages, 1)),
            "self": link.format(page),
            "next": link.format(page + 1) if page < pages else None,
            "prev": link.format(page - 1) if page > 1 else None,
        }
        return json_text_reply(
            '{"items":'
            + json_array(items)
            + f',"total":{len(names)},"page":{page},"size":{size},"pages":{pages},'
            + '"links":'
            + dumps(links)
            + "}"
        )
