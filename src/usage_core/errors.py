"""Errors raised by the core and translated into by the adapters.

UsageSyncError
├── ConfigurationError      a setting or environment value that cannot be used
├── CredentialsError        a panel credential that cannot be read or decrypted
├── ConcurrentUpdateError   a guarded write lost every retry to concurrent writers
├── SupersededReadingError  another sync recorded a counter while this one was fetched
└── StoreError              the database holds something the store cannot use
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
