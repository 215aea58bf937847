"""The fake clocks the simulated devices run on: an explicit clock for exact ground truth, or the
wall clock (``time.monotonic``) while a run measures them for real.

- :class:`FakeClock` (the library fakes: :mod:`fakes.nvml`, :mod:`fakes.amd`): time is read
  when asked — the explicit ``t_s``, or ``time.monotonic()`` minus an origin while started;
  nothing runs.
- :class:`RewritingClock` (the sysfs fakes: :mod:`fakes.powercap`, :mod:`fakes.hwmon`): files
  hold the values at one time, so the clock is the time of the last write; ``advance()`` rewrites
  them at once, and while started a thread rewrites them every ``period_s`` (``_write_all``, which
  the subclass defines, is called under ``_lock`` with ``t_s`` set).

Both: ``now_s()``, ``advance(dt_s)``, ``start()`` / ``stop()`` (or ``with fake:``) and
``fake_time_at(t_mono)``, the fake time of a ``time.monotonic()`` value (``run.t0_mono``). Units:
seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Self

__all__ = ["FakeClock", "RewritingClock"]


class FakeClock:
    """An explicit clock, or the wall clock between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.t_s = 0.0
        self._wall_origin: float | None = None
        self._last_origin: float | None = None  # kept after stop() for fake_time_at()
        self._lock = threading.RLock()

    def now_s(self) -> float:
        """Fake time now: the explicit clock, or wall time while started. Units: s."""
        with self._lock:
            if self._wall_origin is not None:
                return time.monotonic() - self._wall_origin
            return self.t_s

    def advance(self, dt_s: float) -> None:
        """Move the explicit clock forward by ``dt_s`` seconds."""
        with self._lock:
            if self._wall_origin is not None:
                raise RuntimeError("advance() while on the wall clock; stop() first")
            self.t_s += dt_s

    def start(self, origin_mono: float | None = None) -> Self:
        """Follow the wall clock (``time.monotonic``) from the current fake time on.

        ``origin_mono``: instead, fake time 0 is this ``time.monotonic()`` value (the clock is
        system-wide, so simulations in several processes of one test share one fake clock).
        """
        with self._lock:
            if self._wall_origin is None:
                origin = time.monotonic() - self.t_s if origin_mono is None else origin_mono
                self._wall_origin = self._last_origin = origin
        return self

    def stop(self) -> None:
        """Freeze the clock at the current wall time."""
        with self._lock:
            if self._wall_origin is not None:
                self.t_s = time.monotonic() - self._wall_origin
                self._wall_origin = None

    def fake_time_at(self, t_mono: float) -> float:
        """Fake time of a ``time.monotonic()`` value during the last wall-clock period."""
        assert self._last_origin is not None, "the wall clock never ran"
        return t_mono - self._last_origin

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class RewritingClock:
    """The time of the last write of a fake's files, moved by :meth:`advance` or by a thread
    that follows the wall clock (see the module docstring).

    Args:
        period_s: how often the wall-clock thread rewrites the files. Units: s.
        name: the thread's name (``fake-powercap``).
    """

    def __init__(self, period_s: float, name: str) -> None:
        self.period_s = period_s
        self.t_s = 0.0
        self._thread_name = name
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wall_origin = 0.0  # time.monotonic() minus fake t when the wall clock runs

    def _write_all(self) -> None:
        """Write every file as it is at ``t_s`` (called under ``_lock``)."""
        raise NotImplementedError

    def advance(self, dt_s: float) -> None:
        """Move the fake clock forward by ``dt_s`` seconds and rewrite the files."""
        if self._thread is not None:
            raise RuntimeError("advance() while the wall-clock thread runs; stop() it first")
        with self._lock:
            self.t_s += dt_s
            self._write_all()

    def now_s(self) -> float:
        """The fake time of the last write. Units: s."""
        with self._lock:
            return self.t_s

    def fake_time_at(self, t_mono: float) -> float:
        """Fake time corresponding to a ``time.monotonic()`` value while the wall clock runs."""
        return t_mono - self._wall_origin

    def start(self) -> Self:
        """Let the files follow the wall clock: a thread rewrites them every ``period_s``."""
        if self._thread is None:
            self._wall_origin = time.monotonic() - self.t_s
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the wall-clock thread (the files keep their last values)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.t_s = time.monotonic() - self._wall_origin
                self._write_all()
            self._stop.wait(self.period_s)
