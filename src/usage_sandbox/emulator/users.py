"""The emulated panels' users: counters, limits and whether each may connect."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping


@dataclasses.dataclass(frozen=True)
class EmulatedUser:
    """One user as every emulated panel sees it.

    Attributes:
        username: The panel username (the client email on 3x-ui).
        upload: Upload bytes in the current period.
        download: Download bytes in the current period.
        settled: Bytes used before earlier counter resets; Marzban and
            Marzneshin report `settled + upload + download` as
            `lifetime_used_traffic` (Marzban's sum of reset logs; on
            Marzneshin what its stored lifetime column holds beyond the counter).
        data_limit: Quota in bytes, 0 for unlimited.
        enabled: False for a disabled user.
        expire: Marzban `expire` (epoch seconds), None for never.
        note: The user's note (Marzban, Marzneshin), None for none.
        next_plan: Marzban's `next_plan` (a `NextPlanModel` dict), None for none.
        xui_client: The 3x-ui client entry as last written (`settings.clients[i]`
            without `email` and `enable`, which come from `username` and
            `enabled`); None until a write stores one, the entry then being
            derived from the username.
    """

    username: str
    upload: int = 0
    download: int = 0
    settled: int = 0
    data_limit: int = 0
    enabled: bool = True
    expire: int | None = None
    note: str | None = None
    next_plan: Mapping[str, object] | None = dataclasses.field(default=None, hash=False)
    xui_client: Mapping[str, object] | None = dataclasses.field(default=None, hash=False)

    @property
    def used(self) -> int:
        """The current-period counter: upload + download."""
        return self.upload + self.download

    @property
    def lifetime(self) -> int:
        """Everything ever used, across resets."""
        return self.settled + self.used


def split_total(total: int) -> tuple[int, int]:
    """Split a total counter into (upload, download): a quarter up, the rest down."""
    upload = total // 4
    return upload, total - upload


UserSeed = Mapping[str, int] | Iterable[EmulatedUser]


class UserStore:
    """The emulated panel's users, safe to read and change from any thread."""

    def __init__(self, users: UserSeed | None = None) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, EmulatedUser] = {}
        self._ids: dict[str, int] = {}
        self._next_id = 1
        self._membership = 0  # bumped whenever a name is added or removed
        self._sorted: tuple[int, tuple[str, ...]] = (-1, ())
        if isinstance(users, Mapping):
            for name, total in users.items():
                self.add(name, total=total)
        elif users is not None:
            for user in users:
                self.put(user)

    def put(self, user: EmulatedUser) -> None:
        """Add `user`, replacing any user of the same name."""
        with self._lock:
            if user.username not in self._ids:
                self._ids[user.username] = self._next_id
                self._next_id += 1
            if user.username not in self._users:
                self._membership += 1
            self._users[user.username] = user

    def add(
        self,
        username: str,
        *,
        total: int | None = None,
        upload: int = 0,
        download: int = 0,
        data_limit: int = 0,
        enabled: bool = True,
        next_plan: Mapping[str, object] | None = None,
    ) -> EmulatedUser:
        """Add (or replace) a user; `total` is split with `split_total`."""
        if total is not None:
            upload, download = split_total(total)
        user = EmulatedUser(
            username,
            upload,
            download,
            data_limit=data_limit,
            enabled=enabled,
            next_plan=None if next_plan is None else dict(next_plan),
        )
        self.put(user)
        return user

    def get(self, username: str) -> EmulatedUser | None:
        """The user named `username`, or None."""
        with self._lock:
            return self._users.get(username)

    def all(self) -> list[EmulatedUser]:
        """Every user, in insertion order."""
        with self._lock:
            return list(self._users.values())

    def id_of(self, username: str) -> int:
        """The panel-side numeric id; a user deleted and added again gets a new one."""
        with self._lock:
            return self._ids.get(username, 0)

    def is_enabled(self, username: str) -> bool:
        """Whether the user is enabled, as the last write left it (KeyError when unknown)."""
        with self._lock:
            return self._users[username].enabled

    def names(self) -> list[str]:
        """Every username, in insertion order."""
        with self._lock:
            return list(self._users)

    def remove(self, username: str) -> bool:
        """Delete a user; True when it existed."""
        with self._lock:
            self._ids.pop(username, None)
            existed = self._users.pop(username, None) is not None
            self._membership += existed
            return existed

    def ordered_names(self, by_username: bool) -> tuple[int, tuple[str, ...]]:
        """(membership version, every username) in insertion or username order.

        The version changes whenever a user is added or removed, so callers
        can cache what they derive from the names; the username order itself
        is cached here.
        """
        with self._lock:
            version = self._membership
            if not by_username:
                return version, tuple(self._users)
            if self._sorted[0] != version:
                self._sorted = (version, tuple(sorted(self._users)))
            return self._sorted

    def entries(self, names: Iterable[str]) -> list[tuple[EmulatedUser, int]]:
        """(user, panel-side id) for each of `names` that exists, under one lock."""
        with self._lock:
            users, ids = self._users, self._ids
            return [(users[name], ids[name]) for name in names if name in users]

    def set_counter(
        self,
        username: str,
        *,
        total: int | None = None,
        upload: int | None = None,
        download: int | None = None,
    ) -> EmulatedUser:
        """Overwrite a user's counter (KeyError when unknown)."""
        if total is not None:
            upload, download = split_total(total)
        return self._change(
            username,
            lambda u: dataclasses.replace(
                u,
                upload=u.upload if upload is None else upload,
                download=u.download if download is None else download,
            ),
        )

    def add_traffic(self, username: str, *, upload: int = 0, download: int = 0) -> EmulatedUser:
        """Grow a user's counter, as traffic would (KeyError when unknown)."""
        return self._change(
            username,
            lambda u: dataclasses.replace(
                u, upload=u.upload + upload, download=u.download + download
            ),
        )

    def reset_counter(self, username: str) -> EmulatedUser:
        """Zero the current-period counter, keeping the lifetime total (KeyError when unknown)."""
        return self._change(
            username,
            lambda u: dataclasses.replace(u, upload=0, download=0, settled=u.lifetime),
        )

    def reset_every_counter(self, *, keep_lifetime: bool) -> None:
        """Zero every user's counter, as a panel's "reset all users" does.

        With `keep_lifetime` false the lifetime goes too: Marzban's reset-all
        deletes the reset logs its lifetime is computed from.
        """
        with self._lock:
            for name, user in self._users.items():
                settled = user.lifetime if keep_lifetime else 0
                self._users[name] = dataclasses.replace(user, upload=0, download=0, settled=settled)

    def set_enabled(self, username: str, enabled: bool) -> EmulatedUser:
        """Enable or disable a user (KeyError when unknown)."""
        return self._change(username, lambda u: dataclasses.replace(u, enabled=enabled))

    def set_next_plan(self, username: str, plan: Mapping[str, object] | None) -> EmulatedUser:
        """Give a user a Marzban next plan, or drop it with None (KeyError when unknown)."""
        copied = None if plan is None else dict(plan)
        return self._change(username, lambda u: dataclasses.replace(u, next_plan=copied))

    def modify(self, username: str, change: Callable[[EmulatedUser], EmulatedUser]) -> EmulatedUser:
        """Replace a user with `change(user)`, atomically (KeyError when unknown).

        `change` runs under the store's lock: it must be quick and must not
        call back into the store. An exception it raises leaves the user as it was.
        """
        return self._change(username, change)

    def rename(self, username: str, new_name: str) -> EmulatedUser:
        """Rename a user, keeping its place, panel-side id and everything else.

        KeyError when `username` is unknown, ValueError when `new_name` is taken.
        """
        with self._lock:
            user = self._users[username]
            if new_name == username:
                return user
            if new_name in self._users:
                raise ValueError(f"user {new_name!r} exists")
            renamed = dataclasses.replace(user, username=new_name)
            self._users = {
                (new_name if name == username else name): (renamed if name == username else u)
                for name, u in self._users.items()
            }
            self._ids[new_name] = self._ids.pop(username)
            self._membership += 1
            return renamed

    def _change(
        self, username: str, change: Callable[[EmulatedUser], EmulatedUser]
    ) -> EmulatedUser:
        with self._lock:
            user = change(self._users[username])
            self._users[username] = user
            return user

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)

    def __contains__(self, username: object) -> bool:
        with self._lock:
            return username in self._users


def stable_uuid(name: str) -> uuid.UUID:
    """A uuid derived from the name, the same in every run."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"usage-sync-emulator:{name}")
