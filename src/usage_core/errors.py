"""Errors raised by the core and translated into by the adapters.

UsageSyncError
├── ConfigurationError      a setting or environment value that cannot be used
├── CredentialsError        a panel credential that cannot be read or decrypted
├── ConcurrentUpdateError   a guarded write lost every retry to concurrent writers
├── SupersededReadingError  another sync recorded a counter while this one was fetched
├── StoreError              the database holds something the store cannot use
├── DatabaseError           the database itself failed a read or a write
│   ├── DatabaseUnavailableError  it cannot be reached, refuses us, or does not exist
│   └── MissingTablesError        it lacks the app's tables
└── LockHeldError           a run is already under way (the unique lock is held)
"""


class UsageSyncError(Exception):
    """Base class of every error usage-sync raises on purpose."""


class ConfigurationError(UsageSyncError):
    """Raised when a setting or environment value cannot be used."""


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


class MissingTablesError(DatabaseError):
    """Raised when the database lacks the tables of the app (or of `db init`)."""


class LockHeldError(UsageSyncError):
    """Raised when a run is asked for while another holds the unique lock."""

    def __init__(self, remaining_seconds: float | None) -> None:
        left = f"{remaining_seconds:.0f} s" if remaining_seconds is not None else "an unknown time"
        super().__init__(f"a sync is already running or queued (its lock expires in {left})")
        self.remaining_seconds = remaining_seconds
