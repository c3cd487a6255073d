"""The exit codes of every `usage-sync` command, and the one for each error the user can fix.

0 and 1 say how a run went; from 2 up, the run did not happen, and the code says why:

| code | meaning |
|---|---|
| 0 | done: every selected config synced, or was skipped for a stated reason |
| 1 | done, but some configs (or panel operations) failed |
| 2 | could not run now: the lock is held, the database is down (or a command-line mistake) |
| 3 | a setting in the environment cannot be used (URL, driver, time zone, log file, number) |
| 4 | the app key is malformed |
| 5 | the database refuses the user or password |
| 6 | the database does not exist |
| 7 | the database lacks the app's tables |
| 8 | Redis cannot be reached or refuses the connection |
"""

from __future__ import annotations

from enum import IntEnum

from usage_core.errors import (
    AppKeyError,
    BrokerUnavailableError,
    ConfigurationError,
    DatabaseAccessDeniedError,
    DatabaseMissingError,
    DatabaseUnavailableError,
    LockHeldError,
    MissingTablesError,
)


class ExitCode(IntEnum):
    """What a command's exit status means (documented in docs/usage.md)."""

    OK = 0
    SOME_FAILED = 1
    NOT_RUN = 2
    CONFIGURATION = 3
    APP_KEY = 4
    DATABASE_ACCESS_DENIED = 5
    DATABASE_MISSING = 6
    MISSING_TABLES = 7
    REDIS_UNAVAILABLE = 8


# Most specific first: the first class the error is an instance of decides.
_BY_ERROR: tuple[tuple[type[Exception], ExitCode], ...] = (
    (AppKeyError, ExitCode.APP_KEY),
    (ConfigurationError, ExitCode.CONFIGURATION),
    (DatabaseAccessDeniedError, ExitCode.DATABASE_ACCESS_DENIED),
    (DatabaseMissingError, ExitCode.DATABASE_MISSING),
    (DatabaseUnavailableError, ExitCode.NOT_RUN),
    (MissingTablesError, ExitCode.MISSING_TABLES),
    (BrokerUnavailableError, ExitCode.REDIS_UNAVAILABLE),
    (LockHeldError, ExitCode.NOT_RUN),
)


def exit_code_for(error: Exception) -> ExitCode:
    """The exit code of a command that ended with `error` (NOT_RUN for any other error)."""
    for kind, code in _BY_ERROR:
        if isinstance(error, kind):
            return code
    return ExitCode.NOT_RUN


def exit_code_of_outcome(failed: int) -> ExitCode:
    """The exit code of a run that happened: OK, or SOME_FAILED when `failed` is not 0."""
    return ExitCode.SOME_FAILED if failed else ExitCode.OK
