"""Times and durations of plans: parsing (errors are ScheduleError) and the short format.

Time input: ISO 8601 with ``Z`` or an offset (``2022-03-01T08:00Z``, ``...+01:00``), optionally a
zone suffix (``2022-03-27T09:00[Europe/Madrid]``) or ``tz=``; naive times are UTC unless ``tz`` is
given. A local time that does not exist (spring DST gap) or occurs twice (autumn) is a
:class:`~greentrack.errors.ScheduleError`. Durations are physical seconds: a 24 h window across a
DST change is 24 real hours.
"""

from __future__ import annotations

from datetime import datetime

from greentrack import timefmt
from greentrack.errors import ScheduleError

__all__ = ["format_duration", "parse_duration", "parse_time"]


def parse_duration(value: float | int | str, what: str = "duration") -> float:
    """Seconds from ``6h``, ``90m``, ``1h30m``, ``3600s``, ``2d``, ``1w``, ``PT6H`` or a number
    (:func:`greentrack.timefmt.parse_duration`); bad input raises ScheduleError."""
    return timefmt.parse_duration(value, what, error=ScheduleError)


def parse_time(
    value: float | int | str | datetime | None,
    *,
    tz: str | None = None,
    now_s: float | None = None,
    what: str = "time",
) -> float:
    """Epoch seconds (UTC) from ISO 8601 text (``Z``, an offset or a ``[Area/City]`` suffix), a
    datetime, epoch seconds, or ``now``/None; naive times are in ``tz``, else UTC
    (:func:`greentrack.timefmt.parse_time`). Bad input, DST gaps and ambiguous local times
    raise ScheduleError."""
    return timefmt.parse_time(value, tz=tz, now_s=now_s, what=what, error=ScheduleError)


def format_duration(seconds: float) -> str:
    """``6h``, ``1h30m``, ``45m``, ``2h05m30s``: a duration in seconds, rounded to the second."""
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if s:
        return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
    return f"{h}h{m:02d}m" if h and m else (f"{h}h" if h else f"{m}m")
