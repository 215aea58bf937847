"""One parser for times and durations, shared by the CLI, the carbon lookups, the scheduler and
``--since``; each caller keeps its own error class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greentrack.errors import ConfigError, ScheduleError
from greentrack.scheduling import times as schedule
from greentrack.timefmt import format_time, iso_utc, parse_duration, parse_since, parse_time


def test_durations_compact_iso_and_numbers() -> None:
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("P1DT12H") == 129600.0
    assert parse_duration("1w") == 604800.0
    assert parse_duration(0) == 0.0
    with pytest.raises(ConfigError, match="longer than zero"):
        parse_duration("0h", "--forecast", positive=True)
    with pytest.raises(ConfigError, match=r"cannot read --within '6 hours': write a number"):
        parse_duration("6 hours", "--within")
    with pytest.raises(ScheduleError, match="cannot read the duration"):
        schedule.parse_duration("6")  # the scheduler's class, the same words


def test_times_round_trip_and_errors() -> None:
    t = parse_time("2022-03-01T09:00+01:00")
    assert iso_utc(t) == "2022-03-01T08:00:00Z" == format_time(t + 0.4)
    assert parse_time(datetime(2022, 3, 1, 8)) == t  # a naive datetime is UTC
    assert parse_time("2022-03-01") == parse_time("2022-03-01T00:00Z")
    with pytest.raises(ConfigError, match=r"cannot read the time 'tomorrow': use ISO 8601"):
        parse_time("tomorrow")
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse_time("2022-03-01T09:00[Europe/Madird]")


def test_since_takes_any_duration_or_time() -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    assert abs(parse_since("7d") - (now - timedelta(days=7))) < timedelta(seconds=5)
    assert abs(parse_since("PT30M") - (now - timedelta(minutes=30))) < timedelta(seconds=5)
    assert parse_since("2026-01-31T10:00+01:00") == datetime(2026, 1, 31, 9, 0)
    assert parse_since("2026-01-31") == datetime(2026, 1, 31)
    with pytest.raises(ConfigError, match="neither a duration"):
        parse_since("last week")
