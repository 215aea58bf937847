"""A meter that replays a power trace: test your own code against known energy, no hardware.

    from greentrack.meters import ReplayMeter

    meter = ReplayMeter([
        (0.0, {"gpu:0": 300.0, "cpu:package-0": 60.0}),   # from t = 0 s: 300 W and 60 W
        (10.0, {"gpu:0": 100.0}),                         # from t = 10 s: gpu:0 drops to 100 W
    ])
    meter.start(t_mono=50.0)
    meter.read(t_mono=70.0)   # gpu:0: 300·10 + 100·10 = 4000 J; cpu:package-0: 60·20 = 1200 J

The trace is piecewise constant: each point sets the power of the devices it names from its
offset on (seconds after :meth:`ReplayMeter.start`); a device keeps its power until a later
point changes it, is at 0 W before it is first named, and the last powers hold forever.
Integration is exact (no sampling error), so tests can compare with ``==`` up to float rounding.
The component of a device is the part of its id before ``:`` (``gpu:0`` -> ``gpu``).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Mapping, Sequence

from greentrack.errors import ConfigError
from greentrack.meters.base import DeviceReading, Meter

__all__ = ["PowerTrace", "ReplayMeter"]

PowerTrace = Sequence[tuple[float, Mapping[str, float]]]
"""``[(t_offset_s, {device: power_w}), ...]``: offsets in s (non-decreasing), powers in W."""


class ReplayMeter(Meter):
    """Replays a :data:`PowerTrace` with exact piecewise-constant integration.

    Args:
        trace: ``[(t_offset_s, {device: power_w}), ...]``, offsets non-decreasing, powers ≥ 0.
        method: the method label on readings (default ``sampled``: a trace is sampled power).

    Raises:
        ConfigError: an empty or unsorted trace, a negative or non-finite number.
    """

    name = "replay"

    def __init__(self, trace: PowerTrace, *, method: str = "sampled") -> None:
        super().__init__()
        points = [(float(t), dict(p)) for t, p in trace]
        if not points:
            raise ConfigError("a replay trace needs at least one (t_offset_s, {device: power_w})")
        devices: list[str] = []
        prev_t = -math.inf
        for t, powers in points:
            if not math.isfinite(t) or t < prev_t:
                raise ConfigError(
                    f"replay trace offsets must be finite and non-decreasing (got {t} after "
                    f"{prev_t}); sort the trace by time"
                )
            prev_t = t
            for dev, p in powers.items():
                if not math.isfinite(p) or p < 0:
                    raise ConfigError(f"replay power of {dev} at {t} s is {p}; use watts ≥ 0")
                if dev not in devices:
                    devices.append(dev)
        self.method = method
        self._times = [t for t, _ in points]
        self._power: dict[str, list[float]] = {}
        self._cum_j: dict[str, list[float]] = {}
        for dev in devices:
            p_w, cum_j, cur_w, acc_j = [], [], 0.0, 0.0
            for i, (t, powers) in enumerate(points):
                if i:
                    acc_j += cur_w * (t - self._times[i - 1])
                cur_w = float(powers.get(dev, cur_w))
                p_w.append(cur_w)
                cum_j.append(acc_j)
            self._power[dev], self._cum_j[dev] = p_w, cum_j
        self._t_start: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[float, str, float]], **kwargs: str) -> ReplayMeter:
        """Build from ``(t_s, device, power_w)`` rows (e.g. a recorded run's samples).

        Offsets are taken from the earliest ``t_s``; rows may come in any order.
        """
        rows = sorted(rows, key=lambda r: r[0])
        if not rows:
            raise ConfigError("no rows to replay")
        t0 = rows[0][0]
        trace: dict[float, dict[str, float]] = {}
        for t, dev, p in rows:
            trace.setdefault(float(t) - t0, {})[dev] = float(p)
        return cls(sorted(trace.items()), **kwargs)

    @property
    def devices(self) -> list[str]:
        """Device ids in the trace, in order of first appearance."""
        return list(self._power)

    def describe(self) -> dict[str, str]:
        """Every device is ``"replayed trace"``."""
        return {d: "replayed trace" for d in self._power}

    def power_at_w(self, device: str, t_offset_s: float) -> float:
        """The trace's power of ``device`` at ``t_offset_s`` s after start. Units: W."""
        i = bisect.bisect_right(self._times, t_offset_s) - 1
        return 0.0 if i < 0 else self._power[device][i]

    def energy_at_j(self, device: str, t_offset_s: float) -> float:
        """Exact energy of ``device`` from offset 0 to ``t_offset_s`` (s). Units: J."""
        if t_offset_s <= 0:
            return 0.0
        i = bisect.bisect_right(self._times, t_offset_s) - 1
        if i < 0:
            return 0.0
        return self._cum_j[device][i] + self._power[device][i] * (t_offset_s - self._times[i])

    def start(self, t_mono: float) -> None:
        """Offset 0 of the trace is monotonic time ``t_mono`` (s)."""
        with self._lock:
            self._t_start = t_mono

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Exact cumulative energy (J) per device at ``t_mono``; ``power_w`` = the trace's now."""
        with self._lock:
            if self._t_start is None:
                raise RuntimeError("ReplayMeter.read() called before start()")
            off = t_mono - self._t_start
        return [
            DeviceReading(
                dev.split(":", 1)[0],
                dev,
                self.energy_at_j(dev, off),
                self.power_at_w(dev, off),
                self.method,
            )
            for dev in self._power
        ]
