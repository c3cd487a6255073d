"""Errors raised by the core and translated into by the adapters.

UsageSyncError
├── ConfigurationError      a setting or environment value that cannot be used
│   └── AppKeyError             the app key is malformed
├── CredentialsError        a panel credential that cannot be read or decrypted
├── ConcurrentUpdateError   a guarded write lost every retry to concurrent writers
├── SupersededReadingError  another sync recorded a counter while this one was fetched
├── StoreError              the database holds something the store cannot use
├── DatabaseError           the database itself failed a read or a write
│   ├── DatabaseUnavailableError  it cannot be reached, refuses us, or does not exist
│   │   ├── DatabaseAccessDeniedError  it refuses the user or password
│   │   └── DatabaseMissingError       the server has no database of that name
│   └── MissingTablesError        it lacks the app's tables
├── BrokerUnavailableError  the broker of the lock, queue and run history cannot be used
└── LockHeldError           a run is already under way (the unique lock is held)
"""


class UsageSyncError(Exception):
    """Base class of every error usage-sync raises on purpose."""


class ConfigurationError(UsageSyncError):
    """Raised when a setting or environment value cannot be used."""


class AppKeyError(ConfigurationError):
    """Raised when the app key cannot be a key at all (checked before any panel is read)."""


class CredentialsError(UsageSyncError):
    """Raised when a panel's stored credential cannot be read or decrypted.

    The message names the panel and the column, never the value.
    """

    def __init__(self, panel_id: int, column: str, why: str) -> None:
        super().__init__(f"panel {panel_id}: {column} could not be read: {why}")
        self.panel_id = panel_id
        self.column = column


class ConcurrentUpdateError(UsageSyncError):
    """Raised when a guarded write kept losing to concurrent writers."""


class SupersededReadingError(UsageSyncError):
    """Raised when another sync recorded a counter after this reading was taken.

    The two readings' order is unknown, so applying the older one could look
    like a counter reset and count bytes twice; it is dropped instead.
    """


class StoreError(UsageSyncError):
    """Raised when a row holds data the store cannot interpret safely."""


class DatabaseError(UsageSyncError):
    """Raised when the database fails a read or a write; the message is the driver's reason."""


class DatabaseUnavailableError(DatabaseError):
    """Raised when the database cannot be reached, refuses the credentials, or does not exist."""


class DatabaseAccessDeniedError(DatabaseUnavailableError):
    """Raised when the database refuses the user or the password."""


class DatabaseMissingError(DatabaseUnavailableError):
    """Raised when the server has no database of the configured name."""


class MissingTablesError(DatabaseError):
    """Raised when the database lacks the tables of the app (or of `db init`)."""


class BrokerUnavailableError(UsageSyncError):
    """Raised when the broker that holds the lock, the queue and the run history
    cannot be reached or refuses the connection; the message says which and why."""


class LockHeldError(UsageSyncError):
    """Raised when a run is asked for while another holds the unique lock."""

    def __init__(self, remaining_seconds: float | None) -> None:
        left = f"{remaining_seconds:.0f} s" if remaining_seconds is not None else "an unknown time"
        super().__init__(f"a sync is already running or queued (its lock expires in {left})")
        self.remaining_seconds = remaining_seconds
