"""Running a command at its planned time: wait, re-plan, launch tracked, pause and resume.

``greentrack schedule ... -- CMD`` goes through :func:`schedule_command`:

1. plan (:func:`greentrack.schedule.plan`);
2. wait until the plan's start, with a countdown on stderr. Ctrl-C while waiting cancels cleanly:
   nothing has been launched, nothing is stored, the exit status is 130; SIGTERM and SIGHUP do
   the same (exit status 143 and 129), with the same line on stderr. When the plan came from a
   live forecast, the forecast is fetched again every ``replan_every_s`` (15 min); if the current
   plan's expected emissions under the new forecast moved by more than ``replan_threshold_pct``
   (10 %), the job is re-planned from now to the same deadline. Each re-plan is recorded in the
   plan stored on the run (``replans``);
3. run the command tracked with :func:`greentrack.runner.run_command`, the plan stored on the run
   and the run accounted on the plan's intensity source (the same CSV files and layout options,
   or the same provider);
4. Pause & Resume plans, ``pause_mode="stop"`` (default): a :class:`PauseController` sends the
   child ``SIGSTOP`` at the end of each run segment and ``SIGCONT`` at the start of the next.
   On a live forecast, each pause re-plans the work left (:meth:`Replanner.remaining`): the new
   timetable replaces the old one when it saves more than ``replan_threshold_pct``.
   Before any signal is forwarded to the child (Ctrl-C, SIGTERM) it is resumed first, so a stopped
   child is never left behind. ``pause_mode="cooperative"``: no signals; the job itself calls
   ``run.should_pause()`` (the plan reaches it through ``GREENTRACK_PLAN``) and waits or
   checkpoints. A job that overruns its plan keeps running after the last segment.

Trade-off: a process stopped with SIGSTOP keeps everything it holds — GPU memory, pinned host
memory, open files, network connections — and the GPU still draws idle power (tens of watts per
device, plan it with ``pause_power_w``). Collective operations of distributed jobs (NCCL) and
remote connections may time out during a long pause. Cooperative pausing lets the job checkpoint
and free the device, at the price of a few lines in the training loop.

Time is injected (:class:`Clock`): tests drive the waiting loop with :class:`FakeClock`.
"""

from __future__ import annotations

import itertools
import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from greentrack.errors import GreentrackError, ScheduleError
from greentrack.units import J_PER_KWH

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries
    from greentrack.schedule import Plan, PowerProfile

__all__ = [
    "Clock",
    "FakeClock",
    "PauseController",
    "Replanner",
    "SystemClock",
    "schedule_command",
    "wait_until_start",
]

REPLAN_EVERY_S = 900.0
"""How often a live forecast is fetched again while waiting. Units: s."""
REPLAN_THRESHOLD_PCT = 10.0
"""Re-plan when the current plan's expected emissions move by more than this. Units: %."""


class Clock(Protocol):
    """Wall-clock time (epoch seconds) and sleeping; injected so tests need not wait."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: :func:`time.time` and :func:`time.sleep`."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


@dataclass
class FakeClock:
    """A clock that moves only when slept on or advanced (for tests, yours included).

    ``on_sleep`` is called after each sleep with the new time (e.g. to raise KeyboardInterrupt).
    """

    t: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[float], None] | None = None

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.t += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.t)

    def advance(self, seconds: float) -> None:
        self.t += seconds


# --------------------------------------------------------------------------------------------
# Pausing a child process on the plan's timetable
# --------------------------------------------------------------------------------------------


def _gaps(segments: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The pauses between consecutive run segments."""
    return [(a[1], b[0]) for a, b in itertools.pairwise(segments) if b[0] > a[1]]


def _as_pairs(segments: Sequence[Any]) -> list[tuple[float, float]]:
    out = []
    for s in segments:
        if hasattr(s, "start_s"):
            out.append((float(s.start_s), float(s.end_s)))
        elif isinstance(s, Mapping):
            from greentrack.schedule import parse_time

            out.append((parse_time(s["start"]), parse_time(s["end"])))
        else:
            out.append((float(s[0]), float(s[1])))
    return sorted(out)


class PauseController:
    """Stops (SIGSTOP) and resumes (SIGCONT) a child between the run segments of a plan.

    Drive it with :meth:`poll` (the runner calls it every 0.2 s while it waits for the child) or
    :meth:`start` a small thread that polls. :meth:`release` resumes the child if it is stopped
    and disables the timetable; :meth:`forward` releases, then sends a signal — so a signal never
    reaches a stopped child that could not act on it, and no stopped orphan is left behind.

    Args:
        pid: the child's pid (or its process-group id with ``process_group=True``, which also
            stops the child's own children, e.g. data-loader workers).
        segments: the plan's run segments, ``[(start_s, end_s), ...]`` epoch seconds, Segment
            objects or ``{"start": iso, "end": iso}`` dicts. The child is paused only *between*
            segments; after the last one it runs on (a job that overruns is not stopped).
        clock: time source (default :class:`SystemClock`).
        on_event: called with ``("pause" | "resume" | "replan", t_s)`` after each signal (and
            each new timetable).
        replan: called as ``replan(now_s, done_s, rest, pauses_done)`` each time a pause begins
            (the child is stopped; ``done_s`` is how long it has run, ``rest`` the timetable's run
            segments after now); a list of new run segments replaces the timetable, None keeps
            it (:meth:`Replanner.remaining` on a live forecast). It runs outside the lock, so a
            slow forecast never delays :meth:`release` or a forwarded signal.
    """

    def __init__(
        self,
        pid: int,
        segments: Sequence[Any],
        clock: Clock | None = None,
        *,
        process_group: bool = False,
        on_event: Callable[[str, float], None] | None = None,
        replan: Callable[..., list[tuple[float, float]] | None] | None = None,
    ) -> None:
        segs = _as_pairs(segments)
        self.pid = pid
        self.clock = clock or SystemClock()
        self.process_group = process_group
        self.on_event = on_event
        self.replan = replan
        self.segments = segs
        self.pauses = _gaps(segs)
        self.events: list[tuple[str, float]] = []
        self.paused = False
        self._t_first: float | None = None  # first poll: the child started running
        self._paused_s = 0.0  # time spent stopped in finished pauses
        self._paused_at = 0.0
        self._released = False
        self._gone = False
        self._lock = threading.Lock()
        self._stop_thread = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_pause_windows(
        cls, pid: int, windows: Sequence[tuple[float, float]], clock: Clock | None = None, **kw: Any
    ) -> PauseController:
        """A controller for explicit pause windows ``[(start_s, end_s), ...]``."""
        ctl = cls(pid, [], clock, **kw)
        ctl.pauses = sorted((float(a), float(b)) for a, b in windows)
        return ctl

    def _send(self, sig: int) -> bool:
        try:
            if self.process_group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
            return True
        except ProcessLookupError:
            self._gone = True
            return False

    def _in_pause(self, now_s: float) -> bool:
        return any(a <= now_s < b for a, b in self.pauses)

    def done_s(self, now_s: float) -> float:
        """How long the child has run (not stopped) since the first poll. Units: s."""
        if self._t_first is None:
            return 0.0
        stopped = self._paused_s + (now_s - self._paused_at if self.paused else 0.0)
        return max(0.0, now_s - self._t_first - stopped)

    def poll(self) -> None:
        """Apply the timetable at the current time: stop inside a pause, continue outside."""
        replan_at = None
        with self._lock:
            if self._released or self._gone:
                return
            now = self.clock.now()
            if self._t_first is None:
                self._t_first = now
            want = self._in_pause(now)
            if want and not self.paused:
                if self._send(signal.SIGSTOP):
                    self.paused, self._paused_at = True, now
                    self._event("pause", now)
                    replan_at = now if self.replan is not None else None
            elif not want and self.paused:
                if self._send(signal.SIGCONT):
                    self._event("resume", now)
                self.paused = False
                self._paused_s += now - self._paused_at
            if replan_at is not None:  # the re-plan's inputs, read under the lock
                done = self.done_s(now)
                rest = [(a, b) for a, b in self.segments if b > now + 1e-6]
                pauses = sum(1 for kind, _ in self.events if kind == "pause")
        if replan_at is not None:
            self._replan(replan_at, done, rest, pauses)

    def _replan(self, now: float, done: float, rest: list[tuple[float, float]], n: int) -> None:
        try:
            new = self.replan(now, done, rest, n) if self.replan is not None else None
        except Exception:  # a bug in re-planning never breaks the job: keep the timetable
            import logging

            logging.getLogger("greentrack").exception("greentrack: re-planning failed")
            new = None
        if not new:
            return
        with self._lock:
            if self._released or self._gone:
                return
            segs = sorted((float(a), float(b)) for a, b in new)
            self.segments = segs
            first = [(now, segs[0][0])] if segs[0][0] > now else []
            self.pauses = first + _gaps(segs)
            self._event("replan", now)
        self.poll()  # the new timetable may resume the child at once

    def _event(self, kind: str, t_s: float) -> None:
        self.events.append((kind, t_s))
        if self.on_event is not None:
            self.on_event(kind, t_s)

    def release(self) -> None:
        """Resume the child if stopped and stop following the timetable (idempotent)."""
        with self._lock:
            self._released = True
            if self.paused:
                if self._send(signal.SIGCONT):
                    self._event("resume", self.clock.now())
                self.paused = False
        self._stop_thread.set()

    def forward(self, sig: int) -> None:
        """Release (SIGCONT first), then send ``sig`` to the child."""
        self.release()
        self._send(sig)

    def start(self, interval_s: float = 0.2) -> PauseController:
        """Poll in a daemon thread every ``interval_s`` (real time) until released."""

        def loop() -> None:
            while not self._stop_thread.wait(interval_s):
                self.poll()

        self.poll()
        self._thread = threading.Thread(target=loop, name="greentrack-pause", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> PauseController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.release()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


# --------------------------------------------------------------------------------------------
# Waiting, with re-planning on a live forecast
# --------------------------------------------------------------------------------------------


@dataclass
class Replanner:
    """Fetches a fresh forecast and re-plans when the current plan's figure moved too much.

    Args:
        fetch: ``fetch(now_s, deadline_s) -> IntensitySeries`` (a fresh forecast).
        job: the job's power profile (to re-evaluate the current plan exactly).
        options: keyword arguments of :func:`greentrack.schedule.plan_series` (strategy,
            min_run_s, max_pauses, power_w/profile, pause_power_w).
        threshold_pct: re-plan when ``|new estimate / planned - 1|`` exceeds this. Units: %.
    """

    fetch: Callable[[float, float], IntensitySeries]
    job: PowerProfile
    options: Mapping[str, Any]
    threshold_pct: float = REPLAN_THRESHOLD_PCT

    def __call__(self, current: Plan, now_s: float) -> tuple[Plan | None, str]:
        from greentrack.schedule import evaluate_segments, plan_series

        series = self.fetch(now_s, current.deadline_s)
        if not series.covers(now_s, current.deadline_s) and len(series) > 1:
            return None, "fresh forecast does not cover the window; kept the plan"
        estimate = evaluate_segments(series, current.segments, self.job, current.pause_power_w)
        base = current.expected_co2e_g
        moved = 100.0 * (estimate / base - 1.0) if base > 0 else 0.0
        if abs(moved) <= self.threshold_pct:
            return None, f"forecast moved {moved:+.1f} %; kept the plan"
        new = plan_series(series, now_s, deadline_s=current.deadline_s, **self.options)
        return new, f"forecast moved {moved:+.1f} %; re-planned"

    def remaining(
        self,
        now_s: float,
        deadline_s: float,
        done_s: float,
        rest: Sequence[tuple[float, float]],
        pauses_done: int = 0,
    ) -> tuple[list[tuple[float, float]] | None, str]:
        """Between two run segments of a Pause & Resume job: re-plan the work that is left.

        The rest of the current timetable and a new Pause & Resume plan for the work left
        (``job.tail(done_s)``, from now to the same deadline, same minimum run and pause power,
        the pauses already taken counted against ``max_pauses``) are both judged on a fresh
        forecast, the wait from now to each one's first segment at the pause power included; the
        new timetable is taken when it saves more than ``threshold_pct``.

        Args:
            now_s: now; the job is paused. Units: epoch s.
            deadline_s: when the job must be done. Units: epoch s.
            done_s: how long the job has run so far (its progress). Units: s.
            rest: the current timetable's run segments after now.
            pauses_done: pauses taken so far, this one included.

        Returns:
            ``(new run segments or None to keep the timetable, what was decided in words)``.
        """
        from greentrack.schedule import evaluate_segments, plan_series

        if done_s >= self.job.duration_s - 1e-3 or not rest:
            return None, "no work left to re-plan"
        try:
            series = self.fetch(now_s, deadline_s)
        except GreentrackError as e:
            return None, f"no fresh forecast ({str(e).splitlines()[0]}); kept the timetable"
        if not series.covers(now_s, deadline_s) and len(series) > 1:
            return None, "fresh forecast does not cover the window; kept the timetable"
        job = self.job.tail(done_s)
        rest = _stretch_to(sorted(rest), job.duration_s)
        pause_w = float(self.options.get("pause_power_w") or 0.0)

        def from_now_g(segments: Sequence[tuple[float, float]]) -> float:
            """Emissions from now: the wait for the first segment (paused), then the timetable."""
            wait = float(series.integral(segments[0][0]) - series.integral(now_s))
            return evaluate_segments(series, segments, job, pause_w) + pause_w * wait / J_PER_KWH

        options = {
            k: v
            for k, v in self.options.items()
            if k in ("min_run_s", "pause_power_w") and v is not None
        }
        max_pauses = self.options.get("max_pauses")
        if max_pauses is not None:
            options["max_pauses"] = max(0, int(max_pauses) - pauses_done)
        try:
            new = plan_series(series, now_s, strategy="pause_resume", deadline_s=deadline_s,
                              profile=job, **options)  # fmt: skip
        except ScheduleError as e:
            return None, f"cannot re-plan the work left ({e}); kept the timetable"
        segments = [(s.start_s, s.end_s) for s in new.segments]
        old_g, new_g = from_now_g(rest), from_now_g(segments)
        saving = 100.0 * (1.0 - new_g / old_g) if old_g > 0 else 0.0
        if saving <= self.threshold_pct:
            return None, f"a new timetable would save {saving:.1f} %; kept the timetable"
        return segments, f"a new timetable saves {saving:.1f} % of the rest; re-planned"


def _stretch_to(segments: list[tuple[float, float]], work_s: float) -> list[tuple[float, float]]:
    """``segments`` with the last one moved so that they hold exactly ``work_s`` of running (the
    job's real progress differs from the plan by the timetable's polling, a fraction of a s)."""
    total = sum(b - a for a, b in segments)
    a, b = segments[-1]
    return [*segments[:-1], (a, max(a, b + work_s - total))]


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
    from greentrack.timefmt import format_time

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
                from greentrack.errors import GreentrackError

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


# --------------------------------------------------------------------------------------------
# The command path
# --------------------------------------------------------------------------------------------


def schedule_command(
    argv: Sequence[str],
    *,
    plan_options: Mapping[str, Any],
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
    csv_options: Mapping[str, Any] | None = None,
) -> int:
    """Plan ``argv``, wait for its start, run it tracked (pausing it on a P&R plan); exit code.

    Args:
        plan_options: keyword arguments of :func:`greentrack.schedule.plan` (duration, within,
            region, csv, strategy, ...). ``at`` must be now or absent: a command runs in the future.
        pause_mode: ``stop`` (SIGSTOP/SIGCONT the child) or ``cooperative`` (the job calls
            ``run.should_pause()``).
        run_command: the tracked runner (default :func:`greentrack.runner.run_command`).
        fetch: fresh-forecast function for re-planning (default: the plan's live source; none
            for CSV data).
        csv_options: layout options of ``plan_options["csv"]`` (``time_column``, ``tz``...); the
            run is accounted on the same files read the same way.

    Returns:
        The command's exit code; 130 when cancelled with Ctrl-C before it started (143 for
        SIGTERM, 129 for SIGHUP).
    """
    from greentrack.schedule import (
        _job,
        format_plan,
        format_time,
        parse_duration,
        plan,
    )

    if not argv:
        raise ScheduleError("no command given: greentrack schedule [OPTIONS] -- CMD [ARGS...]")
    if pause_mode not in ("stop", "cooperative"):
        raise ScheduleError(f"--pause-mode must be stop or cooperative, not {pause_mode!r}")
    clock = clock or SystemClock()
    out = out if out is not None else sys.stderr
    opts = dict(plan_options)
    p = plan(**opts, now_s=clock.now())
    now = clock.now()
    if p.start_s < now - 60.0:
        raise ScheduleError(
            f"the plan starts at {format_time(p.start_s)}, in the past; a command can only be "
            "scheduled from now (drop --at, and plan on a forecast)"
        )
    out.write(format_plan(p) + "\n")
    replanner = None
    if fetch is None and not opts.get("csv") and opts.get("series") is None:
        fetch = _live_fetch(opts)
    if fetch is not None and replan_every_s > 0:
        d = None if opts.get("duration") is None else parse_duration(opts["duration"])
        job = _job(d, opts.get("power_w"), opts.get("profile"))
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
                    "power_w": opts.get("power_w") if opts.get("profile") is None else None,
                    "profile": opts.get("profile"),
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
            **_run_source(opts, csv_options),
        )
    )


def _run_source(opts: Mapping[str, Any], csv_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's intensity source: the plan's (its CSV files and layout, or its provider)."""
    if opts.get("csv"):
        return {"csv": list(opts["csv"]), "csv_options": dict(csv_options or {})}
    if opts.get("source"):
        return {"source": opts["source"]}
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
    from greentrack.timefmt import format_time

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


def _live_fetch(opts: Mapping[str, Any]) -> Callable[[float, float], IntensitySeries] | None:
    """A fresh-forecast function for the plan's live source, or None (static / history)."""
    from greentrack.schedule import _source_series

    def fetch(now_s: float, deadline_s: float) -> IntensitySeries:
        series, _ = _source_series(
            opts.get("region"),
            opts.get("source"),
            None,
            now_s,
            deadline_s,
            opts.get("config"),
            now_s,
        )
        return series

    source = (opts.get("source") or "").strip().lower()
    if source in ("static", "codecarbon", "codecarbon-static", "csv"):
        return None
    return fetch
