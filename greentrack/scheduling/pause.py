"""Pausing a child process on the plan's timetable: SIGSTOP at the end of each run segment,
SIGCONT at the start of the next.

Before any signal is forwarded to the child (Ctrl-C, SIGTERM) it is resumed first, so a stopped
child is never left behind. A job that overruns its plan keeps running after the last segment.

Trade-off: a process stopped with SIGSTOP keeps everything it holds — GPU memory, pinned host
memory, open files, network connections — and the GPU still draws idle power (tens of watts per
device, plan it with ``pause_power_w``). Collective operations of distributed jobs (NCCL) and
remote connections may time out during a long pause. Cooperative pausing (the job calls
``run.should_pause()``) lets the job checkpoint and free the device, at the price of a few lines
in the training loop.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from greentrack.scheduling.clock import Clock, SystemClock

__all__ = ["PauseController"]


def _gaps(segments: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The pauses between consecutive run segments."""
    return [(a[1], b[0]) for a, b in itertools.pairwise(segments) if b[0] > a[1]]


def _as_pairs(segments: Sequence[Any]) -> list[tuple[float, float]]:
    out = []
    for s in segments:
        if hasattr(s, "start_s"):
            out.append((float(s.start_s), float(s.end_s)))
        elif isinstance(s, Mapping):
            from greentrack.scheduling.times import parse_time

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
