"""Planning a job: a request in, a :class:`~greentrack.scheduling.plan.Plan` out.

:func:`plan_for` takes a :class:`~greentrack.scheduling.request.PlanRequest`: it parses the times
and durations, reads a stored run's power profile when asked, fetches the intensity for the window
(:mod:`greentrack.scheduling.sources`) and calls :func:`plan_series`, the strategy dispatch on a
series. :func:`plan` (``greentrack.plan``) is the keyword form of the same request.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from greentrack import timefmt
from greentrack.carbon.embodied import saving_sentence
from greentrack.carbon.series import IntensitySeries
from greentrack.errors import ScheduleError
from greentrack.scheduling.flexible import flexible_start, run_now
from greentrack.scheduling.pause_resume import pause_resume
from greentrack.scheduling.plan import Plan
from greentrack.scheduling.profile import PowerProfile, job_profile, profile_from_run
from greentrack.scheduling.request import PlanRequest
from greentrack.scheduling.sources import source_series
from greentrack.scheduling.times import format_duration, parse_duration, parse_time
from greentrack.scheduling.window import check_slack, resolve_slack
from greentrack.timefmt import format_time
from greentrack.units import format_co2e

__all__ = ["format_plan", "plan", "plan_for", "plan_series"]


def plan_for(request: PlanRequest, *, now_s: float | None = None) -> Plan:
    """Plan the job of ``request``: when to start it (and pause it) for the least emissions
    before its deadline. ``now_s`` is what "now" means (default the current time; epoch s).

    Intensity: ``request.series``, else its CSV files (read with ``request.csv_options``), else
    the source's forecast (future windows) or history (past windows).
    """
    r = request
    now = time.time() if now_s is None else float(now_s)
    if r.tz:
        timefmt.time_zone(r.tz, error=ScheduleError)  # wrong even when no naive time needs it
    at_s = parse_time(r.at, tz=r.tz, now_s=now, what="submission time")
    d_s = None if r.duration is None else parse_duration(r.duration)
    profile = r.profile
    if r.profile_run is not None:
        if profile is not None:
            raise ScheduleError("give either a profile or --profile-run, not both")
        profile = profile_from_run(r.db_url, r.profile_run)
    job_d = job_profile(d_s, r.power_w, profile).duration_s
    w_s = None if r.within is None else parse_duration(r.within, "--within")
    dl_s = (
        None if r.deadline is None else parse_time(r.deadline, tz=r.tz, now_s=now, what="deadline")
    )
    w = check_slack(job_d, resolve_slack(at_s, job_d, w_s, dl_s))
    m_s = None if r.min_run is None else parse_duration(r.min_run, "--min-run")
    notes: list[str] = []
    series = r.series
    if series is None:
        series, notes = source_series(
            r.region, r.source, r.csv, at_s, at_s + job_d + w, r.config, now, r.csv_options
        )
    result = plan_series(
        series,
        at_s,
        d_s,
        strategy=r.strategy,
        within_s=w_s,
        deadline_s=dl_s,
        min_run_s=m_s,
        max_pauses=r.max_pauses,
        power_w=r.power_w,
        profile=profile,
        pause_power_w=r.pause_power_w,
    )
    if notes:
        result = dataclasses.replace(result, warnings=(*result.warnings, *notes))
    return result


def plan(
    duration: float | str | None = None,
    *,
    within: float | str | None = None,
    deadline: float | str | datetime | None = None,
    at: float | str | datetime | None = None,
    strategy: str = "flexible_start",
    region: str | None = None,
    source: str | None = None,
    csv: str | Path | Sequence[str | Path] | None = None,
    series: IntensitySeries | None = None,
    min_run: float | str | None = None,
    max_pauses: int | None = None,
    power_w: float | None = None,
    profile: PowerProfile | Sequence[float] | None = None,
    profile_run: str | None = None,
    pause_power_w: float = 0.0,
    tz: str | None = None,
    db_url: str | None = None,
    config: Any = None,
    now_s: float | None = None,
) -> Plan:
    """Plan a job: when to start it (and pause it) for the least emissions before its deadline.

    Args:
        duration: the job's run time (``"6h"`` or seconds); optional with a profile.
        within: slack after submission (``"24h"``); the job must finish by submission + duration +
            within. Or ``deadline``: an absolute finish time.
        at: submission time (default now); ISO text, datetime or epoch seconds.
        strategy: ``flexible_start`` (default), ``pause_resume`` or ``run_now``.
        region/source/csv/series: where the intensity comes from: a series, CSV file(s), or a
            source's forecast (future windows) or history (past windows).
        min_run, max_pauses, pause_power_w: Pause & Resume constraints (see :func:`pause_resume`).
        power_w: the job's constant power (default 1 kW); or ``profile`` (W per elapsed bin) /
            ``profile_run`` (a stored run whose measured power profile is used).
        tz: IANA zone for naive times.

    Example::

        import greentrack as gt
        p = gt.plan("6h", within="24h", csv="ES_2022_hourly.csv", at="2022-03-01T08:00Z")
        print(p.start_s, p.expected_co2e_g, p.run_now_co2e_g, p.saving_pct, p.provenance)
    """
    return plan_for(
        PlanRequest(
            duration=duration,
            within=within,
            deadline=deadline,
            at=at,
            strategy=strategy,
            region=region,
            source=source,
            csv=csv,
            series=series,
            min_run=min_run,
            max_pauses=max_pauses,
            power_w=power_w,
            profile=profile,
            profile_run=profile_run,
            pause_power_w=pause_power_w,
            tz=tz,
            db_url=db_url,
            config=config,
        ),
        now_s=now_s,
    )


def plan_series(
    series: IntensitySeries,
    at_s: float,
    duration_s: float | None = None,
    *,
    strategy: str = "flexible_start",
    within_s: float | None = None,
    deadline_s: float | None = None,
    min_run_s: float | None = None,
    max_pauses: int | None = None,
    power_w: float | None = None,
    profile: PowerProfile | Sequence[float] | None = None,
    pause_power_w: float = 0.0,
) -> Plan:
    """Plan one job on a series with the named strategy (numbers only; see :func:`plan`)."""
    if strategy == "flexible_start":
        if min_run_s is not None or max_pauses is not None or pause_power_w:
            raise ScheduleError("--min-run, --max-pauses and --pause-power-w need --pause-resume")
        return flexible_start(
            series,
            at_s,
            duration_s,
            within_s=within_s,
            deadline_s=deadline_s,
            power_w=power_w,
            profile=profile,
        )
    if strategy == "pause_resume":
        return pause_resume(
            series,
            at_s,
            duration_s,
            within_s=within_s,
            deadline_s=deadline_s,
            min_run_s=min_run_s,
            max_pauses=max_pauses,
            power_w=power_w,
            profile=profile,
            pause_power_w=pause_power_w,
        )
    if strategy == "run_now":
        return run_now(series, at_s, duration_s, power_w=power_w, profile=profile)
    raise ScheduleError(
        f"unknown strategy {strategy!r}; use flexible_start, pause_resume or run_now"
    )


def format_plan(p: Plan) -> str:
    """A short human-readable table of a plan."""
    kind = {"flexible_start": "Flexible Start", "pause_resume": "Pause & Resume"}.get(
        p.strategy, "Run now"
    )
    lines = [
        f"{kind} plan for a {format_duration(p.duration_s)} job at {p.power_w:g} W "
        f"({p.energy_kwh:.3g} kWh)",
        f"  submitted   {format_time(p.submitted_s)}   deadline {format_time(p.deadline_s)}",
        f"  intensity   {p.provenance.label()}",
        f"  start       {format_time(p.start_s)}   end {format_time(p.end_s)}",
    ]
    if len(p.segments) > 1:
        for i, s in enumerate(p.segments, 1):
            lines.append(
                f"  segment {i:<3} {format_time(s.start_s)} .. {format_time(s.end_s)} "
                f"({format_duration(s.duration_s)})"
            )
    lines += [
        f"  expected    {format_co2e(p.expected_co2e_g)} CO2e",
        f"  run now     {format_co2e(p.run_now_co2e_g)} CO2e",
        f"  saving      {p.saving_pct:.1f} %",
        "  "
        + saving_sentence(p.run_now_co2e_g - p.expected_co2e_g, p.run_now_co2e_g, None, "job")
        + "; embodied emissions do not move with the start time",
    ]
    if p.strategy == "pause_resume" and "flexible_start" in p.alternatives:
        lines.append(
            f"  (Flexible Start alone: {format_co2e(p.alternatives['flexible_start'])} CO2e)"
        )
    lines += [f"  note: {w}" for w in p.warnings]
    return "\n".join(lines)
