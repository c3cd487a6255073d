"""Exit codes chosen by the error's type."""

import pytest

from usage_core.errors import (
    AppKeyError,
    BrokerUnavailableError,
    ConfigurationError,
    DatabaseAccessDeniedError,
    DatabaseError,
    DatabaseMissingError,
    DatabaseUnavailableError,
    LockHeldError,
    MissingTablesError,
)
from usage_entrypoints.exit_codes import ExitCode, exit_code_for, exit_code_of_outcome


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AppKeyError("x"), ExitCode.APP_KEY),
        (ConfigurationError("x"), ExitCode.CONFIGURATION),
        (DatabaseAccessDeniedError("x"), ExitCode.DATABASE_ACCESS_DENIED),
        (DatabaseMissingError("x"), ExitCode.DATABASE_MISSING),
        (DatabaseUnavailableError("x"), ExitCode.NOT_RUN),
        (MissingTablesError("x"), ExitCode.MISSING_TABLES),
        (BrokerUnavailableError("x"), ExitCode.REDIS_UNAVAILABLE),
        (LockHeldError(30.0), ExitCode.NOT_RUN),
        (DatabaseError("x"), ExitCode.NOT_RUN),
    ],
)
def test_each_error_has_its_code(error: Exception, code: ExitCode) -> None:
    """The most specific class decides: an app key is not just any configuration error."""
    assert exit_code_for(error) == code


def test_codes_are_distinct() -> None:
    """No two meanings share a code."""
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


def test_outcome() -> None:
    """A run that happened: 0 without failures, 1 with any."""
    assert (exit_code_of_outcome(0), exit_code_of_outcome(3)) == (ExitCode.OK, ExitCode.SOME_FAILED)
