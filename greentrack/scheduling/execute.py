"""Running a command at its planned time: wait, re-plan, launch tracked, pause and resume.

``greentrack schedule ... -- CMD`` goes through :func:`schedule_command`:

1. plan (:func:`greentrack.scheduling.planner.plan_for` on the command's
   :class:`~greentrack.scheduling.request.PlanRequest`);
2. wait until the plan's start, with a countdown on stderr. Ctrl-C while waiting cancels cleanly:
   nothing has been launched, nothing is stored, the exit status is 130; SIGTERM and SIGHUP do
   the same (exit status 143 and 129), with the same line on stderr. When the plan came from a
   live forecast, the forecast is fetched again every ``replan_every_s`` (15 min); if the current
   plan's expected emissions under the new forecast moved by more than ``replan_threshold_pct``
   (10 %), the job is re-planned from now to the same deadline
   (:class:`~greentrack.scheduling.replan.Replanner`). Each re-plan is recorded in the plan
   stored on the run (``replans``);
3. run the command tracked with :func:`greentrack.runner.run_command`, the plan stored on the run
   and the run accounted on the plan's intensity source (the same CSV files and layout options,
   or the same provider);
4. Pause & Resume plans, ``pause_mode="stop"`` (default): a
   :class:`~greentrack.scheduling.pause.PauseController` sends the child ``SIGSTOP`` at the end
   of each run segment and ``SIGCONT`` at the start of the next. On a live forecast, each pause
   re-plans the work left (:meth:`Replanner.remaining`): the new timetable replaces the old one
   when it saves more than ``replan_threshold_pct``. ``pause_mode="cooperative"``: no signals;
   the job itself calls ``run.should_pause()`` (the plan reaches it through ``GREENTRACK_PLAN``)
   and waits or checkpoints. A job that overruns its plan keeps running after the last segment.

Time is injected (:class:`~greentrack.scheduling.clock.Clock`): tests drive the waiting loop with
:class:`greentrack.testing.clock.FakeClock`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from greentrack.errors import GreentrackError, ScheduleError
from greentrack.scheduling.clock import Clock, SystemClock
from greentrack.scheduling.pause import PauseController
from greentrack.scheduling.planner import format_plan, plan_for
from greentrack.scheduling.profile import job_profile, profile_from_run
from greentrack.scheduling.replan import REPLAN_EVERY_S, REPLAN_THRESHOLD_PCT, Replanner
from greentrack.scheduling.request import PlanRequest
from greentrack.scheduling.sources import source_series
from greentrack.scheduling.times import parse_duration
from greentrack.timefmt import format_time

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries
    from greentrack.scheduling.plan import Plan

__all__ = ["schedule_command", "wait_until_start"]


def _countdown(seconds: float) -> str:
    s = max(0, math.ceil(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}"


def wait_until_start(
    plan: Plan,
    *,
    clock: Clock | None = None,
    out: IO[str] | None = None,
    replan: Callable[[Plan, float], tuple[Plan | None, str]] | None = None,
    replan_every_s: float = REPLAN_EVERY_S,
    tick_s: float = 1.0,
) -> tuple[Plan, list[dict[str, Any]]]:
    """Sleep until ``plan.start_s`` with a countdown; re-plan on the way. Returns the final plan.

    KeyboardInterrupt propagates (the caller reports the cancellation). On a terminal the
    countdown is rewritten in place every ``tick_s``; otherwise a line is written every 10 minutes.
    """
    clock = clock or SystemClock()
    out = out if out is not None else sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    replans: list[dict[str, Any]] = []
    now = clock.now()
    next_replan = now + replan_every_s if replan is not None else math.inf
    last_line = -math.inf
    while now < plan.start_s:
        if now >= next_replan and replan is not None:
            try:
                new, why = replan(plan, now)
            except Exception as e:  # a provider hiccup must not kill a waiting job
                if not isinstance(e, GreentrackError):
                    raise
                new, why = None, f"re-plan failed ({str(e).splitlines()[0]}); kept the plan"
            record = {"at": format_time(now), "reason": why, "start": format_time(plan.start_s)}
            if new is not None:
                record["new_start"] = format_time(new.start_s)
                plan = new
            replans.append(record)
            out.write(("\n" if tty else "") + f"greentrack: {why}\n")
            next_replan = now + replan_every_s
        remaining = plan.start_s - now
        line = f"greentrack: starting in {_countdown(remaining)} at {format_time(plan.start_s)}"
        if tty:
            out.write(f"\r{line} (Ctrl-C cancels) ")
            out.flush()
        elif now - last_line >= 600.0:
            out.write(line + "\n")
            out.flush()
            last_line = now
        clock.sleep(min(remaining, tick_s if tty else 60.0, max(0.0, next_replan - now)))
        now = clock.now()
    if tty:
        out.write("\n")
    return plan, replans


def schedule_command(
    argv: Sequence[str],
    *,
    request: PlanRequest,
    project: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    db_url: str | None = None,
    pause_mode: str = "stop",
    replan_every_s: float = REPLAN_EVERY_S,
    replan_threshold_pct: float = REPLAN_THRESHOLD_PCT,
    clock: Clock | None = None,
    out: IO[str] | None = None,
    run_command: Callable[..., int] | None = None,
    fetch: Callable[[float, float], IntensitySeries] | None = None,
) -> int:
    """Plan ``argv``, wait for its start, run it tracked (pausing it on a P&R plan); exit code.

    Args:
        request: the job to plan (:class:`~greentrack.scheduling.request.PlanRequest`).
            ``at`` must be now or absent: a command runs in the future. The run is accounted on
            the request's intensity source: its CSV files read with its ``csv_options``, or its
            provider.
        pause_mode: ``stop`` (SIGSTOP/SIGCONT the child) or ``cooperative`` (the job calls
            ``run.should_pause()``).
        run_command: the tracked runner (default :func:`greentrack.runner.run_command`).
        fetch: fresh-forecast function for re-planning (default: the plan's live source; none
            for CSV data).

    Returns:
        The command's exit code; 130 when cancelled with Ctrl-C before it started (143 for
        SIGTERM, 129 for SIGHUP).
    """
    if not argv:
        raise ScheduleError("no command given: greentrack schedule [OPTIONS] -- CMD [ARGS...]")
    if pause_mode not in ("stop", "cooperative"):
        raise ScheduleError(f"--pause-mode must be stop or cooperative, not {pause_mode!r}")
    clock = clock or SystemClock()
    out = out if out is not None else sys.stderr
    r = request
    if r.profile_run is not None and r.profile is None:  # read once: the plan and re-plans use it
        r = dataclasses.replace(
            r, profile=profile_from_run(r.db_url, r.profile_run), profile_run=None
        )
    p = plan_for(r, now_s=clock.now())
    now = clock.now()
    if p.start_s < now - 60.0:
        raise ScheduleError(
            f"the plan starts at {format_time(p.start_s)}, in the past; a command can only be "
            "scheduled from now (drop --at, and plan on a forecast)"
        )
    out.write(format_plan(p) + "\n")
    replanner = None
    if fetch is None and not r.csv and r.series is None:
        fetch = _live_fetch(r)
    if fetch is not None and replan_every_s > 0:
        d = None if r.duration is None else parse_duration(r.duration)
        job = job_profile(d, r.power_w, r.profile)
        replanner = Replanner(
            fetch=fetch,
            job=job,
            options={
                k: v
                for k, v in {
                    "strategy": p.strategy,
                    "duration_s": job.duration_s,
                    "min_run_s": p.min_run_s if p.strategy == "pause_resume" else None,
                    "max_pauses": p.max_pauses,
                    "power_w": r.power_w if r.profile is None else None,
                    "profile": r.profile,
                    "pause_power_w": p.pause_power_w,
                }.items()
                if v is not None and not (k == "pause_power_w" and not v)
            },
            threshold_pct=replan_threshold_pct,
        )
    try:
        with _signals_cancel():
            p, replans = wait_until_start(
                p, clock=clock, out=out, replan=replanner, replan_every_s=replan_every_s
            )
    except (KeyboardInterrupt, _Cancelled) as e:
        out.write("\ngreentrack: cancelled before the start; nothing was run\n")
        out.flush()
        return 128 + e.signum if isinstance(e, _Cancelled) else 130
    plan_dict = p.to_dict()
    if replans:
        plan_dict["replans"] = replans
    plan_dict["pause_mode"] = pause_mode
    if run_command is None:
        from greentrack.runner import run_command as run_command_impl

        run_command = run_command_impl
    on_started = None
    if p.pauses and pause_mode == "stop":
        on_started = _pause_hook(p, clock, plan_dict, replanner)
    out.write(f"greentrack: starting {shlex.join(argv)}\n")
    return int(
        run_command(
            list(argv),
            project=project,
            name=name,
            params=params,
            tags={**(tags or {}), "schedule": p.strategy},
            region=p.provenance.zone or None,
            db_url=db_url,
            plan=plan_dict,
            on_started=on_started,
            **_run_source(r),
        )
    )


def _run_source(request: PlanRequest) -> dict[str, Any]:
    """The run's intensity source: the plan's (its CSV files and layout, or its provider)."""
    if request.csv:
        return {"csv": request.csv_files, "csv_options": dict(request.csv_options or {})}
    if request.source:
        return {"source": request.source}
    return {}


class _Cancelled(Exception):
    """A termination signal arrived while waiting for the start."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class _signals_cancel:
    """While waiting: SIGTERM and SIGHUP raise :class:`_Cancelled` (as Ctrl-C raises
    KeyboardInterrupt), so a terminated wait says what it did. Main thread only."""

    _SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __enter__(self) -> None:
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return

        def cancel(signum: int, frame: Any) -> None:
            raise _Cancelled(signum)

        for sig in self._SIGNALS:
            self.previous[sig] = signal.signal(sig, cancel)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _pause_hook(
    p: Plan, clock: Clock, plan_dict: dict[str, Any], replanner: Replanner | None = None
) -> Callable[[Any, Any], Any]:
    """``on_started`` for the runner: a PauseController that records what it applied and, on a
    live forecast, re-plans the work left at each pause (recorded in the plan's ``replans``)."""

    def hook(run: Any, child: Any) -> PauseController:
        try:
            group = os.getpgid(child.pid) == child.pid
        except OSError:
            group = False
        applied: list[dict[str, str]] = []
        replans: list[dict[str, Any]] = list(plan_dict.get("replans", []))

        def record() -> None:
            if hasattr(run, "set_plan"):
                run.set_plan({**plan_dict, "applied": list(applied), "replans": list(replans)})

        def note(kind: str, t_s: float) -> None:
            applied.append({"event": kind, "at": format_time(t_s)})
            record()

        def replan(now: float, done: float, rest: list[tuple[float, float]], n: int) -> Any:
            assert replanner is not None
            new, why = replanner.remaining(now, p.deadline_s, done, rest, n)
            entry: dict[str, Any] = {"at": format_time(now), "during": "pause", "note": why}
            entry["done_s"] = round(done, 1)
            if new:
                entry["segments"] = [
                    {"start": format_time(a), "end": format_time(b)} for a, b in new
                ]
            replans.append(entry)
            record()
            return new

        ctl = PauseController(
            child.pid,
            p.segments,
            clock,
            process_group=group,
            on_event=note,
            replan=replan if replanner is not None else None,
        )
        ctl.poll()
        return ctl

    return hook


def _live_fetch(request: PlanRequest) -> Callable[[float, float], IntensitySeries] | None:
    """A fresh-forecast function for the plan's live source, or None (static / history)."""

    def fetch(now_s: float, deadline_s: float) -> IntensitySeries:
        series, _ = source_series(
            request.region,
            request.source,
            None,
            now_s,
            deadline_s,
            request.config,
            now_s,
        )
        return series

    from greentrack.carbon import registry

    source = (request.source or "").strip().lower()
    if source in registry.all_names() and not registry.lookup(source).live:
        return None  # static, csv: nothing fresher to fetch
    return fetch
