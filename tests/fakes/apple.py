"""A simulated Apple silicon SoC behind a simulated ``zeus_apple_silicon`` module
(``tests/fakes/sim/zeus_apple_silicon``): CPU, GPU, ANE and DRAM energy counters (mJ) driven by
power scripts, on an explicit clock (``advance``) or the wall clock (``with fake:``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fakes.powercap import Script, integrate_j

__all__ = ["FIELDS", "FakeAppleSilicon"]

SIM_DIR = Path(__file__).resolve().parent / "sim"
FIELDS = {"cpu": "cpu_total_mj", "gpu": "gpu_mj", "ane": "ane_mj", "dram": "dram_mj"}


class FakeAppleSilicon:
    """Power scripts per counter (``cpu``, ``gpu``, ``ane``, ``dram``; a missing one is None in
    the metrics, as on chips without it). ``fail_at_s``: from then on the binding raises."""

    def __init__(self, scripts: Mapping[str, Script], *, fail_at_s: float | None = None) -> None:
        self.scripts = dict(scripts)
        self.fail_at_s = fail_at_s
        self.t_s = 0.0
        self.calls = 0
        self._origin: float | None = None
        self._last_origin: float | None = None
        self._lock = threading.RLock()

    def install(self, monkeypatch: Any) -> FakeAppleSilicon:
        monkeypatch.syspath_prepend(str(SIM_DIR))
        monkeypatch.delitem(sys.modules, "zeus_apple_silicon", raising=False)
        monkeypatch.setenv("GREENTRACK_APPLE", "1")  # "this is an Apple silicon Mac"
        import zeus_apple_silicon

        monkeypatch.setattr(zeus_apple_silicon, "_SIM", self)
        return self

    def now_s(self) -> float:
        with self._lock:
            return self.t_s if self._origin is None else time.monotonic() - self._origin

    def advance(self, dt_s: float) -> None:
        with self._lock:
            assert self._origin is None
            self.t_s += dt_s

    def fake_time_at(self, t_mono: float) -> float:
        assert self._last_origin is not None
        return t_mono - self._last_origin

    def __enter__(self) -> FakeAppleSilicon:
        with self._lock:
            self._origin = self._last_origin = time.monotonic() - self.t_s
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            if self._origin is not None:
                self.t_s = time.monotonic() - self._origin
                self._origin = None

    def expected_energy_j(
        self, what: str, since_s: float = 0.0, until_s: float | None = None
    ) -> float:
        until = self.now_s() if until_s is None else until_s
        if self.fail_at_s is not None:
            until = min(until, self.fail_at_s)
        return integrate_j(self.scripts[what], since_s, until)

    def metrics(self) -> Any:
        import zeus_apple_silicon as z

        t = self.now_s()
        self.calls += 1
        if self.fail_at_s is not None and t >= self.fail_at_s:
            raise RuntimeError("IOReport sample failed")
        values = {
            f: int(integrate_j(self.scripts[k], 0.0, t) * 1000) if k in self.scripts else None
            for k, f in FIELDS.items()
        }
        return z.AppleEnergyMetrics(**values)
