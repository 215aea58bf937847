"""greentrack's exceptions.

Every error greentrack raises on purpose derives from :class:`GreentrackError`, and its message is
one line saying what is wrong and how to fix it. Hardware and vendor errors are translated once,
at the meter boundary, and chained (``raise ... from e``). The user's own exceptions are never
wrapped or replaced.

::

    GreentrackError
    ├── ConfigError                  bad configuration value, option or environment variable
    │   ├── UnknownRegionError       a region/zone that no source knows (lists the closest matches)
    │   └── DatabaseURLError         a malformed or unusable database URL / path
    ├── StoreError                   the run store
    │   ├── SchemaOutdatedError      the database is behind the code: run `greentrack db upgrade`
    │   ├── StoreUnavailableError    the database cannot be reached (readings are spooled)
    │   └── RunLookupError           a run id / prefix that matches no run, or several
    ├── MeterError                   a hardware meter failed (recorded as a warning on the run)
    │   └── MeterPermissionError     the meter exists but cannot be read (message has the fix)
    ├── DatasetError                 a benchmark dataset cannot be fetched or fails its checksum
    ├── IntensityError               carbon-intensity data
    │   ├── IntensityDataError       malformed series / CSV, gaps that cannot be bridged
    │   └── ProviderError            a live provider failed (HTTP status, timeout, bad body)
    └── ScheduleError                an impossible scheduling request (deadline < duration, ...)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = [
    "ConfigError",
    "DatabaseURLError",
    "DatasetError",
    "GreentrackError",
    "IntensityDataError",
    "IntensityError",
    "MeterError",
    "MeterPermissionError",
    "ProviderError",
    "RunLookupError",
    "ScheduleError",
    "SchemaOutdatedError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownRegionError",
    "cli_hints",
    "hint",
]


class GreentrackError(Exception):
    """Base class of every error greentrack raises on purpose."""


class ConfigError(GreentrackError):
    """A configuration value, option or environment variable is wrong."""


class UnknownRegionError(ConfigError):
    """A region or zone that no intensity source knows."""


class DatabaseURLError(ConfigError):
    """A database URL or path that cannot be used."""


class StoreError(GreentrackError):
    """The run store failed."""


class SchemaOutdatedError(StoreError):
    """The database schema is older than this version of greentrack."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached right now."""


class StoreRejectedError(StoreError):
    """The database refused a checkpoint's data (a value it cannot hold): retrying cannot help."""


class RunLookupError(StoreError):
    """A run id or prefix matches no run, or more than one."""


class MeterError(GreentrackError):
    """A hardware meter failed."""


class MeterPermissionError(MeterError):
    """A meter's files or device exist but cannot be read by this user."""


class DatasetError(GreentrackError):
    """A dataset cannot be downloaded, or its bytes do not match the expected checksum."""


class IntensityError(GreentrackError):
    """Carbon-intensity data is missing or wrong."""


class IntensityDataError(IntensityError):
    """A carbon-intensity series or file is malformed."""


class ProviderError(IntensityError):
    """A live carbon-intensity provider failed."""


class ScheduleError(GreentrackError):
    """A scheduling request that cannot be satisfied."""


# -- fix-it hints in the user's language -----------------------------------------------------
#: Library keyword -> the command-line option that sets it, for hints raised under the CLI.
CLI_OPTIONS = {"max_gap_steps": "--max-gap"}
_UNDER_CLI: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "greentrack_under_cli", default=False
)


def hint(keyword: str, value: object) -> str:
    """How the user sets ``keyword`` to ``value`` where they are: ``max_gap_steps=9`` in Python,
    ``--max-gap 9`` inside a command (see :func:`cli_hints`)."""
    option = CLI_OPTIONS.get(keyword)
    if option and _UNDER_CLI.get():
        return f"{option} {value}"
    return f"{keyword}={value}"


@contextlib.contextmanager
def cli_hints() -> Iterator[None]:
    """Within this block :func:`hint` names command-line options (the CLI wraps each command)."""
    token = _UNDER_CLI.set(True)
    try:
        yield
    finally:
        _UNDER_CLI.reset(token)
