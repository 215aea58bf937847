"""Times and durations as users write them, and as greentrack prints them (stdlib only).

* **Times** -> epoch seconds (UTC): ISO 8601 with ``Z`` or an offset (``2022-03-01T08:00Z``,
  ``2022-03-01T09:00+01:00``), optionally a zone suffix (``2022-03-27T09:00[Europe/Madrid]``);
  a time without a zone is in ``tz`` when one is given, else **UTC**; a date alone is its
  midnight; ``now`` (or None) is the current time; numbers are epoch seconds; datetimes are
  taken as they are (naive ones as above). A local time that does not exist (the spring DST gap)
  or occurs twice (autumn) is an error that says which offsets to choose from.
* **Durations** -> seconds: a number and a unit, ``s``, ``m``/``min``, ``h``, ``d`` or ``w``,
  possibly several (``24h``, ``90m``, ``1h30m``, ``2d``, ``10min``); ISO 8601 (``PT6H``,
  ``P1DT12H``); numbers are seconds. Durations are physical: a day across a DST change is 24 h.
* **Since** (``--since``) -> a naive UTC datetime: a duration ago (``7d``) or a time
  (:func:`parse_since`).

Every error is one line saying what was wrong and what to write instead. The error class is the
caller's (``ConfigError`` by default; the scheduler raises ``ScheduleError``).
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from greentrack.errors import ConfigError, GreentrackError

__all__ = ["format_time", "iso_utc", "parse_duration", "parse_since", "parse_time", "time_zone"]

_UNIT_S = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}
_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(w|d|h|min|m|s)", re.IGNORECASE)
_ISO_DURATION_RE = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_ZONE_SUFFIX_RE = re.compile(r"(.*?)\s*\[([A-Za-z0-9_+\-/]+)\]")


def _the(what: str) -> str:
    """``duration`` -> ``the duration``; option names stay bare (``--within``)."""
    return what if what.startswith("-") else f"the {what}"


def parse_duration(
    value: float | int | str,
    what: str = "duration",
    *,
    positive: bool = False,
    error: type[GreentrackError] = ConfigError,
) -> float:
    """Seconds from ``6h``, ``90m``, ``1h30m``, ``3600s``, ``2d``, ``1w``, ``PT6H`` or a number.

    Args:
        value: the text (a unit is required) or a number of seconds.
        what: how to name the value in an error (``duration``, ``--within``...).
        positive: refuse zero as well as negative durations.
        error: the exception class to raise.
    """
    if isinstance(value, bool):
        raise error(f"{what} {value!r} is not a duration; write e.g. 6h, 90m or 3600s")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        iso = _ISO_DURATION_RE.fullmatch(text)
        if text.upper().startswith("P") and iso and any(iso.groupdict().values()):
            seconds = sum(float(v) * _UNIT_S[k] for k, v in iso.groupdict().items() if v)
        else:
            compact = text.replace(" ", "")
            parts = _PART_RE.findall(compact)
            if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
                raise error(
                    f"cannot read {_the(what)} {text!r}: write a number and a unit (s, m, h, d "
                    "or w), e.g. 6h, 90m, 1h30m, 2d or 3600s"
                )
            seconds = sum(float(n) * _UNIT_S[u.lower()] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise error(f"{what} must be a finite, non-negative duration (got {value!r})")
    if positive and seconds <= 0:
        raise error(f"{what} must be longer than zero (got {value!r})")
    return seconds


def parse_time(
    value: float | int | str | datetime | None,
    *,
    tz: str | None = None,
    now_s: float | None = None,
    what: str = "time",
    error: type[GreentrackError] = ConfigError,
) -> float:
    """Epoch seconds (UTC) from ISO 8601 text, a datetime, epoch seconds, or ``now``/None.

    Args:
        value: what the user gave.
        tz: IANA zone of times written without one (default UTC).
        now_s: what ``now`` means (default the current time), for tests and replays.
        what: how to name the value in an error (``time``, ``deadline``...).
        error: the exception class to raise.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "now"):
        return float(time.time() if now_s is None else now_s)
    if isinstance(value, bool):
        raise error(f"{what} {value!r} is not a time; write e.g. 2022-03-01T08:00Z")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise error(f"{what} must be finite (got {value!r})")
        return float(value)
    zone_name = tz
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        m = _ZONE_SUFFIX_RE.fullmatch(text)
        if m:
            text, zone_name = m.group(1), m.group(2)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise error(
                f"cannot read {_the(what)} {value!r}: use ISO 8601 such as 2022-03-01T08:00Z or "
                "2022-03-01T09:00+01:00 (a time without a zone is UTC)"
            ) from None
    if dt.tzinfo is None:
        dt = _localize(dt, zone_name, error) if zone_name else dt.replace(tzinfo=UTC)
    return dt.timestamp()


def time_zone(name: str, *, error: type[GreentrackError] = ConfigError) -> Any:
    """The IANA zone ``name`` (a :class:`zoneinfo.ZoneInfo`); an unknown name is an error."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise error(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Madrid or UTC"
        ) from None


def _localize(naive: datetime, tz_name: str, error: type[GreentrackError]) -> datetime:
    """Attach an IANA zone to a naive local time, refusing DST gaps and ambiguous times."""
    zone = time_zone(tz_name, error=error)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        stamp = naive.isoformat(timespec="minutes")
        if back != naive:
            raise error(
                f"{stamp} does not exist in {tz_name} (clocks jump forward); "
                "give an explicit offset or a time outside the DST gap"
            )
        raise error(
            f"{stamp} happens twice in {tz_name} (clocks go back); add the offset you mean, "
            f"e.g. {stamp}{_fmt_offset(first)} or {stamp}{_fmt_offset(second)}"
        )
    return first


def _fmt_offset(dt: datetime) -> str:
    off = dt.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def iso_utc(t_s: float) -> str:
    """Epoch seconds -> ``2022-03-01T19:00:00Z`` (fractions of a second kept when present)."""
    dt = datetime.fromtimestamp(float(t_s), tz=UTC)
    text = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def format_time(t_s: float) -> str:
    """Epoch seconds -> ``2022-03-01T08:00:00Z``, rounded to the second (plans, countdowns)."""
    return datetime.fromtimestamp(round(float(t_s)), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_since(text: str) -> datetime:
    """``7d``, ``12h``, ``30m`` ago, or an ISO date/time (UTC when naive) -> naive UTC."""
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ConfigError:
        pass
    try:
        return datetime.fromtimestamp(parse_time(text), UTC).replace(tzinfo=None)
    except (ConfigError, OverflowError, OSError, ValueError):
        raise ConfigError(
            f"--since {text!r} is neither a duration (7d, 12h, 30m) nor an ISO date (2026-01-31)"
        ) from None
