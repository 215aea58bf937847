"""A job's window: its slack and deadline, whether the data covers it, and what it cannot save.

``W`` (``--within``) is the slack: the job may start up to ``W`` after its submission ``a`` and
must finish by the deadline ``a + D + W``; an absolute deadline gives ``W = deadline - a - D``.
"""

from __future__ import annotations

import math

import numpy as np

from greentrack.carbon.series import IntensitySeries
from greentrack.errors import ScheduleError
from greentrack.scheduling.profile import EPS_S
from greentrack.scheduling.times import format_duration
from greentrack.timefmt import format_time

__all__ = ["check_slack", "check_window", "resolve_slack", "window_warnings"]


def resolve_slack(
    at_s: float, duration_s: float, within_s: float | None, deadline_s: float | None
) -> float:
    """The slack ``W`` from ``--within`` or an absolute deadline (exactly one of them). Units: s."""
    if within_s is not None and deadline_s is not None:
        raise ScheduleError("give either --within (slack after submission) or --deadline, not both")
    if deadline_s is not None:
        return float(deadline_s) - at_s - duration_s
    if within_s is None:
        raise ScheduleError(
            "how long may the job wait? give --within (e.g. 24h) or --deadline (a finish time)"
        )
    if within_s < 0:
        raise ScheduleError(f"--within must not be negative (got {within_s} s)")
    return float(within_s)


def check_slack(duration_s: float, within_s: float) -> float:
    """The slack, refusing a deadline that leaves less than the job's duration."""
    if not (duration_s > 0):
        raise ScheduleError(f"the job's duration must be positive (got {duration_s} s)")
    if within_s < -EPS_S:
        raise ScheduleError(
            f"the deadline is {format_duration(-within_s)} too early for a "
            f"{format_duration(duration_s)} job started at submission; give a later --deadline "
            "or a shorter --duration"
        )
    return max(0.0, within_s)


def check_window(
    series: IntensitySeries, at_s: float, duration_s: float, within_s: float
) -> tuple[float, float]:
    """``(slack, deadline)`` of the window, refusing one the series does not cover."""
    within_s = check_slack(duration_s, within_s)
    deadline = at_s + duration_s + within_s
    if len(series) > 1 and not series.covers(at_s + EPS_S, deadline - EPS_S):
        room = series.end_s - at_s - duration_s
        fix = (
            f"use --within {format_duration(math.floor(room / 60) * 60)} or less"
            if series.start_s[0] <= at_s and room >= 60
            else "move --at into the data"
        )
        raise ScheduleError(
            f"the intensity data ({series.provenance.source} {series.provenance.zone}) covers "
            f"{format_time(series.start_s[0])}..{format_time(series.end_s)} but the plan needs "
            f"{format_time(at_s)}..{format_time(deadline)}; {fix}, or load more data"
        )
    return within_s, deadline


def window_warnings(series: IntensitySeries, at_s: float, deadline_s: float) -> list[str]:
    """The plan's note when the intensity is constant over the window (nothing to save)."""
    view = series.slice(at_s, deadline_s)
    if len(series) == 1 or np.ptp(view.g_per_kwh) == 0:
        return [
            "the intensity is constant over the window: no schedule can save anything; "
            "use a forecast or a CSV of hourly data"
        ]
    return []
