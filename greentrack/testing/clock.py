"""A clock for tests: time moves only when slept on or advanced.

Pass it as ``clock=`` to :func:`greentrack.scheduling.execute.wait_until_start`,
:func:`~greentrack.scheduling.execute.schedule_command` or
:class:`~greentrack.scheduling.pause.PauseController` (it satisfies
:class:`greentrack.scheduling.clock.Clock`), so a test of a 6-hour wait takes no time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FakeClock"]


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
