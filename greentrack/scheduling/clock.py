"""Wall-clock time, injected: the waiting loop and the pause controller read it through a Clock.

:class:`SystemClock` is the real one; tests (yours included) drive them with
:class:`greentrack.testing.clock.FakeClock`.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


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
