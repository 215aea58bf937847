"""Reading and writing times and durations the way the CLI and provenance show them.

* Times: ISO 8601 with ``Z`` or an offset (``2022-03-01T19:00Z``, ``2022-03-01T20:00+01:00``);
  a time without zone is taken as **UTC**; ``now`` is the current time. Result: epoch seconds.
* Durations: a number and a unit, ``s``, ``m``, ``h``, ``d`` or ``w``, possibly several
  (``24h``, ``90m``, ``2d``, ``1h30m``). Result: seconds.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from greentrack.errors import ConfigError

__all__ = ["iso_utc", "parse_duration", "parse_time"]

_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhdw])", re.IGNORECASE)


def parse_time(text: str) -> float:
    """``"2022-03-01T19:00Z"`` -> epoch seconds. Naive times are UTC; ``"now"`` is now."""
    t = text.strip()
    if t.lower() == "now":
        return time.time()
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ConfigError(
            f"cannot read the time {text!r}: use ISO 8601 such as 2022-03-01T19:00Z "
            "(times without a zone are UTC)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_duration(text: str) -> float:
    """``"24h"`` -> 86400.0 seconds; ``"1h30m"`` -> 5400.0."""
    t = text.strip().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2).lower()]
        pos = m.end()
    if pos != len(t) or not t or total <= 0:
        raise ConfigError(
            f"cannot read the duration {text!r}: use a number and a unit s, m, h, d or w, "
            "e.g. 24h, 90m, 2d"
        )
    return total


def iso_utc(t_s: float) -> str:
    """Epoch seconds -> ``2022-03-01T19:00:00Z`` (fractions of a second kept when present)."""
    dt = datetime.fromtimestamp(float(t_s), tz=UTC)
    text = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")
