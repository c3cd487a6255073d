"""PasarGuard: Marzban's `used_traffic` with the owning admin, and what limits an admin.

PasarGuard (v5) limits admins itself: when an admin is limited (over its
data limit) or disabled, and its role says so, the panel removes the admin's
users from the nodes while each user's own `status` stays `active`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from usage_core.readings.base import HardFailure, UsageResult, json_object
from usage_core.readings.marzban import parse_marzban_user

# The role flag that disconnects an admin's users, per admin status (v5.0.3 on);
# v5.0.0-5.0.2 named the limited one `disable_users_when_limited`.
_DISCONNECT_FLAGS = {
    "limited": ("disconnect_users_when_limited", "disable_users_when_limited"),
    "disabled": ("disconnect_users_when_disabled",),
}


def parse_pasarguard_user(reply: object) -> UsageResult:
    """Read a PasarGuard `UserResponse`: `used_traffic`, and `admin.username` as the owner."""
    result = parse_marzban_user(reply)
    if isinstance(result, HardFailure):
        return result
    root = json_object(reply) or {}
    admin = json_object(root.get("admin"))
    owner = admin.get("username") if admin is not None else None
    return attrs.evolve(result, owner=owner) if isinstance(owner, str) and owner else result


@attrs.frozen
class AdminState:
    """A PasarGuard admin as far as its users' connections go."""

    username: str
    status: str
    disconnects_users: bool

    @property
    def blocks_users(self) -> str | None:
        """Why this admin's users cannot connect, or None when they can."""
        if not self.disconnects_users:
            return None
        return f"admin {self.username} is {self.status}: the panel removed its users from the nodes"


def admin_state(admin: Mapping[str, object]) -> AdminState | None:
    """An `AdminDetails` object's state, or None when it names no admin.

    As the panel decides (`admin_users_sync_blocked`): a limited or disabled
    admin disconnects its users when its role's flag for that status is set
    (the flag defaults to true); an admin without a role, or a panel older
    than v5 whose replies carry no role, disconnects nobody.
    """
    username = admin.get("username")
    if not isinstance(username, str) or not username:
        return None
    status = admin.get("status")
    if not isinstance(status, str):
        status = "disabled" if admin.get("is_disabled") is True else "active"
    role = json_object(admin.get("role"))
    flags = _DISCONNECT_FLAGS.get(status, ())
    disconnects = False
    if role is not None and flags:
        named = [role[flag] for flag in flags if flag in role]
        disconnects = (named[0] if named else True) is not False
    return AdminState(username, status, disconnects)


def parse_pasarguard_admins(reply: object) -> dict[str, AdminState] | str:
    """A `GET /api/admins` reply (`{admins, total, ...}`) or one `GET /api/admin` object."""
    root = json_object(reply)
    if root is None:
        return "the reply is not a JSON object"
    listed = root.get("admins") if "admins" in root else [root]
    if not isinstance(listed, list):
        return "the reply has no admins list"
    states = {}
    for item in listed:
        admin = json_object(item)
        state = admin_state(admin) if admin is not None else None
        if state is not None:
            states[state.username] = state
    return states
