"""What the command line says about an error the user can fix: what is wrong, then what to do."""

from __future__ import annotations

from usage_core.errors import (
    AppKeyError,
    BrokerUnavailableError,
    ConfigurationError,
    DatabaseAccessDeniedError,
    DatabaseMissingError,
    DatabaseUnavailableError,
    LockHeldError,
    MissingTablesError,
    UsageSyncError,
)

NO_TABLES_HINT = (
    "point USAGE_SYNC_DATABASE_URL at the app's database, "
    "or run `usage-sync db init` for a standalone one"
)
_DATABASE_URL = "USAGE_SYNC_DATABASE_URL"


def explain(error: UsageSyncError) -> list[str]:
    """One or two lines for stderr: what is wrong, and what to do about it."""
    if isinstance(error, AppKeyError | ConfigurationError):
        return [f"❌ Configuration error: {error}"]
    if isinstance(error, DatabaseAccessDeniedError):
        return [
            f"❌ Cannot use the database: {error}",
            f"   check the user and password in {_DATABASE_URL} and the user's grants",
        ]
    if isinstance(error, DatabaseMissingError):
        return [
            f"❌ Cannot use the database: {error}",
            f"   point {_DATABASE_URL} at the app's database (is the name right?), "
            "or create that database",
        ]
    if isinstance(error, DatabaseUnavailableError):
        return [
            f"❌ Cannot use the database: {error}",
            f"   check that the server is running and that {_DATABASE_URL} names its host and port",
        ]
    if isinstance(error, MissingTablesError):
        return [f"❌ The database has no usage tables ({error})", f"   {NO_TABLES_HINT}"]
    if isinstance(error, BrokerUnavailableError):
        return [
            f"❌ {error}",
            "   check that Redis is running, and the host, port and password in "
            "USAGE_SYNC_REDIS_URL (unset it to run without Redis: `usage-sync run`)",
        ]
    if isinstance(error, LockHeldError):
        left = error.remaining_seconds or 0
        return [f"❌ A sync is already running or queued (its lock expires in {left:.0f} s)"]
    return [f"❌ {error}"]
