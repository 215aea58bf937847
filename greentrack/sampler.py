"""Background sampling: one thread reads every meter each interval and keeps a bounded time
series; a second thread hands checkpoints to the store at a bounded interval, so that a slow or
absent database never delays a reading.

Checkpoints are scheduled by deadline, not on sampling ticks: the checkpoint thread wakes at
``t0 + k * checkpoint_s`` and reads every meter itself before handing the checkpoint over, so the
energy a SIGKILL can lose is what ``checkpoint_s`` covers (plus one store write), whatever
``interval_s`` is (``tests/test_attack_lifecycle.py`` measures it over many kills).

A meter that raises anything (a ``MeterError``, or a custom meter's ``OSError``) is contained
here: it stops being read, its energy so far is kept, and the failure becomes a warning.

Memory stays bounded for arbitrarily long runs: readings are cumulative energies, so dropping
intermediate points loses no energy. A point is kept when it is at least ``spacing`` after the
previous kept point of the same device, where ``spacing = max(interval, elapsed / max_points)``.
A week sampled every second keeps ~30,000 points per device (``benchmarks/bench_overhead.py``
simulates it). Points not yet checkpointed are handed over and forgotten at each checkpoint.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from greentrack.errors import MeterError
from greentrack.meters.base import DeviceReading, Meter
from greentrack.sigmask import block_signals

__all__ = ["DeviceSeries", "Sampler", "block_signals", "steady_clock"]


def steady_clock() -> Callable[[], tuple[float, float]]:
    """A ``(monotonic_s, wall_s)`` clock whose wall time advances with the monotonic clock.

    Wall time is read once, now; afterwards it is ``wall0 + (monotonic - monotonic0)``. Sample
    times, durations and power then stay right when the system clock is stepped (NTP, a VM
    resumed, an operator): a run is accounted on its real elapsed time. The only cost is the
    clock's drift over the run (NTP slews at most 0.5 ms/s).
    """
    mono0, wall0 = time.monotonic(), time.time()

    def clock() -> tuple[float, float]:
        mono = time.monotonic()
        return mono, wall0 + (mono - mono0)

    return clock


@dataclass
class DeviceSeries:
    """Kept points of one device: wall time (epoch s) and cumulative energy (J)."""

    component: str
    method: str
    t_s: array = field(default_factory=lambda: array("d"))
    energy_j: array = field(default_factory=lambda: array("d"))

    def last(self) -> tuple[float, float] | None:
        return (self.t_s[-1], self.energy_j[-1]) if self.t_s else None


class Sampler:
    """Samples meters on one daemon thread.

    Args:
        meters: started meters.
        interval_s: sampling interval, seconds.
        checkpoint_s: longest time between two calls of ``on_checkpoint``, seconds.
        on_checkpoint: called on the checkpoint thread with the new kept points
            ``[(device, component, t_s, energy_j, power_w)]``; must not raise.
        on_warning: ``(source, message)`` for a meter that failed or warned.
        on_tick: called on the sampling thread after each reading (a cheap watchdog); must
            not raise.
        max_points: points per device before spacing grows with elapsed time.
        clock: ``(monotonic_s, wall_s)`` provider (default :func:`steady_clock`; tests
            simulate long runs with it).
    """

    def __init__(
        self,
        meters: Sequence[Meter],
        *,
        interval_s: float = 1.0,
        checkpoint_s: float = 10.0,
        on_checkpoint: Callable[[list[tuple[str, str, float, float, float | None]]], None]
        | None = None,
        on_warning: Callable[[str, str], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        max_points: int = 5000,
        clock: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        self.meters = list(meters)
        self.interval_s = float(interval_s)
        self.checkpoint_s = float(checkpoint_s)
        self.on_checkpoint = on_checkpoint
        self.on_warning = on_warning
        self.on_tick = on_tick
        self.max_points = max_points
        self.clock = clock or steady_clock()
        self.series: dict[str, DeviceSeries] = {}
        self.latest: dict[str, DeviceReading] = {}
        self._pending: list[tuple[str, str, float, float, float | None]] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._failed: set[int] = set()
        self.t0_mono, self.t0_wall = self.clock()
        self.t1_mono: float | None = None
        self.t1_wall: float | None = None
        self._last_checkpoint = self.t0_mono
        self.reads = 0

    # -- reading ---------------------------------------------------------------------------
    def read_now(self) -> tuple[float, float, dict[str, DeviceReading]]:
        """Read every meter now (any thread).

        Returns:
            ``(monotonic_s, wall_s, {device: cumulative reading})``, the times of the read.
        """
        with self._lock:
            mono, wall = self.clock()
            self._read(mono, wall, keep_all=False)
            return mono, wall, dict(self.latest)

    def _read(self, mono: float, wall: float, *, keep_all: bool) -> None:
        self.reads += 1
        for i, meter in enumerate(self.meters):
            if i in self._failed:
                continue
            try:
                readings = meter.read(mono)
                warnings = meter.pop_warnings()
            except Exception as e:  # MeterError, or anything a custom meter raises
                self._failed.add(i)
                self._warn(meter.name, f"{meter.name} meter stopped: {_why(e)}; its energy so far "
                           "is kept")  # fmt: skip
                continue
            for r in readings:
                self.latest[r.device] = r
                self._keep(r, wall, force=keep_all)
            for w in warnings:
                self._warn(meter.name, w)

    def _keep(self, r: DeviceReading, wall: float, *, force: bool) -> None:
        s = self.series.get(r.device)
        if s is None:
            s = self.series[r.device] = DeviceSeries(r.component, r.method)
        s.method = r.method
        last = s.last()
        if last is not None:
            spacing = max(self.interval_s, (wall - self.t0_wall) / self.max_points) * 0.999
            if wall - last[0] < spacing and not force:
                return
            if wall <= last[0]:
                return
            power_w: float | None = (r.energy_j - last[1]) / (wall - last[0])
        else:
            power_w = r.power_w
        s.t_s.append(wall)
        s.energy_j.append(r.energy_j)
        self._pending.append((r.device, r.component, wall, r.energy_j, power_w))

    def _warn(self, source: str, message: str) -> None:
        if self.on_warning is not None:
            self.on_warning(source, message)

    # -- checkpoints -----------------------------------------------------------------------
    def take_pending(self) -> list[tuple[str, str, float, float, float | None]]:
        """New kept points since the last call (and forget them)."""
        with self._lock:
            out, self._pending = self._pending, []
            return out

    def tick(self) -> None:
        """One sampling step (what the thread does each interval; tests call it directly)."""
        mono, wall = self.clock()
        with self._lock:
            self._read(mono, wall, keep_all=False)
        if mono - self._last_checkpoint >= self.checkpoint_s:
            self._last_checkpoint = mono
            self.checkpoint()

    def checkpoint(self, *, fresh: bool = False) -> None:
        """Hand the new points to ``on_checkpoint``; ``fresh``: read every meter first (the
        checkpoint thread does, so a checkpoint's energy is as of the checkpoint's time)."""
        if fresh:
            with self._lock:
                if self._stop.is_set():  # stop() took the final reading and closed the meters
                    return
                mono, wall = self.clock()
                self._read(mono, wall, keep_all=False)
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.take_pending())

    # -- threads -------------------------------------------------------------------------------
    def start(self, on_baseline: Callable[[float, float], None] | None = None) -> None:
        """Baseline every meter and start the sampling and checkpoint threads.

        ``on_baseline(t0_mono, t0_wall)`` is called with the baseline's times (s) before the
        threads start, so nothing they build can see a run without its start time.
        """
        with self._lock:
            mono, wall = self.clock()
            self.t0_mono, self.t0_wall = mono, wall
            self._last_checkpoint = mono
            for i, meter in enumerate(self.meters):
                try:
                    meter.start(mono)
                except Exception as e:  # MeterError, or anything a custom meter raises
                    self._failed.add(i)
                    self._warn(meter.name, f"{meter.name} meter unavailable: {_why(e)}")
            self._read(mono, wall, keep_all=True)
        if on_baseline is not None:  # before any checkpoint can be built from it
            on_baseline(mono, wall)
        self._thread = threading.Thread(target=self._loop, name="greentrack-sampler", daemon=True)
        self._writer = threading.Thread(
            target=self._write_loop, name="greentrack-checkpoint", daemon=True
        )
        self._thread.start()
        self._writer.start()

    def _loop(self) -> None:
        """Sampling only: a slow or absent store never delays a reading."""
        block_signals()
        next_t = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            next_t += self.interval_s
            now = time.monotonic()
            if next_t < now:  # fell behind (suspended laptop, overloaded host): skip ticks
                next_t = now + self.interval_s
            with self._lock:
                if self._stop.is_set():  # stop() took the final reading: nothing after it
                    return
                mono, wall = self.clock()
                self._read(mono, wall, keep_all=False)
            if self.on_tick is not None:
                self.on_tick()

    def _write_loop(self) -> None:
        """Checkpoints: the first at once (the run appears in the store), then one at each
        deadline ``t0 + k * checkpoint_s``, each with a fresh reading of every meter.

        A run stopped before this thread got going skips the first: the final one covers it.
        A checkpoint that overran its slot (a slow store) is followed by the next one at once,
        then the schedule resumes from there."""
        block_signals()
        if not self._stop.is_set():
            self.checkpoint()
        due = self.t0_mono + self.checkpoint_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self._last_checkpoint = time.monotonic()
            self.checkpoint(fresh=True)
            # the next deadline; after an overrun (a slow store) the next one at once, once
            due = max(due + self.checkpoint_s, time.monotonic())

    def after_fork_in_child(self) -> None:
        """In a fork()ed child: the threads do not exist there and a lock may be held by one of
        them; this copy stops for good without touching the meters (the parent's)."""
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._stop.set()
        self._thread = self._writer = None
        self.meters = []

    def stop(self) -> dict[str, DeviceReading]:
        """Take the final reading (always kept) at once, then stop the threads.

        The run's window ends at this reading (:attr:`t1_mono`), not after an in-flight
        checkpoint finishes. The checkpoint thread is not waited for: a checkpoint in flight
        on a sick store must not hold the exit (the final checkpoint has its own deadline).
        """
        self._stop.set()
        with self._lock:
            mono, wall = self.clock()
            self._read(mono, wall, keep_all=True)
            self.t1_mono, self.t1_wall = mono, wall
            final = dict(self.latest)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(5.0, 3 * self.interval_s))  # a reading is short
        with self._lock:
            for meter in self.meters:
                try:
                    meter.close()
                except Exception:  # MeterError, or anything a custom meter raises
                    pass
        return final


def _why(e: BaseException) -> str:
    """A meter failure in one line: its text for our own errors, with the type for others."""
    if isinstance(e, MeterError):
        return str(e)
    return f"{type(e).__name__}: {e}"
