"""Whole-node power from the BMC, polled off the training thread: the shared part of the IPMI
(:mod:`greentrack.meters.ipmi`) and Redfish (:mod:`greentrack.meters.redfish`) meters.

A BMC answers in tens to hundreds of milliseconds, too slow for :meth:`Meter.read`, which phase
boundaries call on the training thread. So a :class:`NodePowerMeter` polls in its own daemon
thread (one per meter for the whole run, started by :meth:`start`, stopped by :meth:`close`),
every ``poll_s`` seconds, and :meth:`read` only does arithmetic on what was polled:

    energy(t) = Σ P_i · (t_{i+1} − t_i)  +  P_last · (t − t_last)

(zero-order hold: each reading holds until the next, so the energy never goes down between
reads). For a piecewise-constant power the error per step is ``|ΔP|`` × the time until the next
poll (≤ ``poll_s`` plus the BMC's latency). Device ``node:bmc``, component ``node``, method
``sampled``. The figure is the node's wall (or PSU output) power as the BMC reports it: it
includes fans, PSU losses, disks and everything else, and overlaps every component meter, so
it is shown *beside* the components, never added to them.

A poll that fails is retried at the next tick; after :data:`FAILS_BEFORE_LOST` failures in a
row the node power is held at 0 W from the last good reading on, with a warning (energy so far
kept).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from greentrack.errors import MeterError
from greentrack.meters.base import DeviceReading, Meter
from greentrack.units import J_PER_KWH

__all__ = [
    "FAILS_BEFORE_LOST",
    "NODE_COMPONENT",
    "NODE_DEVICE",
    "NodePowerMeter",
    "node_vs_components",
]

NODE_COMPONENT = "node"
NODE_DEVICE = "node:bmc"
FAILS_BEFORE_LOST = 3


def node_vs_components(node_j: float, components_j: float) -> str:
    """The line a run shows when it has node power: ``measured at the node: 1.234 kWh;
    components: 0.987 kWh (80 % of the node)``. Inputs in joules; the node figure is beside the
    components, never added to them. A share over 100 % (components above the wall: a BMC
    that reports something narrower, or estimates that overshoot) is printed as it is."""
    node_kwh, comp_kwh = node_j / J_PER_KWH, components_j / J_PER_KWH
    share = f" ({components_j / node_j:.0%} of the node)" if node_j > 0 else ""
    return f"measured at the node: {node_kwh:.4g} kWh; components: {comp_kwh:.4g} kWh{share}"


class NodePowerMeter(Meter):
    """Base class: subclasses implement :meth:`poll_w` (one BMC reading, W; may be slow).

    Args:
        poll_s: seconds between polls (BMCs refresh about once a second).
    """

    name = "node"
    device = NODE_DEVICE
    model = "BMC"

    def __init__(self, *, poll_s: float = 1.0) -> None:
        super().__init__()
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t_start = 0.0
        self._energy_j = 0.0  # up to _t_last
        self._p_w: float | None = None
        self._t_last = 0.0
        self._fails = 0
        self._lost = False
        self.polls = 0
        self.clock = time.monotonic  # what poll times are taken from (tests drive it)

    def poll_w(self) -> float:
        """One reading of the node's power now. Units: W. Raises :class:`MeterError`."""
        raise NotImplementedError

    @property
    def devices(self) -> list[str]:
        return [self.device]

    def describe(self) -> dict[str, str]:
        return {self.device: self.model}

    def notes(self) -> dict[str, str]:
        return {
            self.device: (
                f"whole-node power from the BMC ({self.model}), polled every {self.poll_s:g} s: "
                "includes fans, PSU losses and every component; shown beside the components, "
                "not added to them"
            )
        }

    def _record(self, t_mono: float, p_w: float | None) -> None:
        with self._lock:
            if self._p_w is not None and t_mono > self._t_last:
                self._energy_j += self._p_w * (t_mono - self._t_last)
            self._t_last = max(self._t_last, t_mono)
            self._p_w = p_w

    def poll_once(self) -> None:
        """One poll: read the BMC and record the power at ``self.clock()`` (never raises)."""
        try:
            p_w = self.poll_w()
        except MeterError as e:
            self._fails += 1
            if self._fails == FAILS_BEFORE_LOST and not self._lost:
                self._lost = True
                now = self.clock()
                self._record(now, 0.0 if self._p_w is not None else None)
                self.warn(
                    f"{self.device} ({self.model}) failed {self._fails} times in a row, "
                    f"{now - self._t_start:.1f} s after the meter started; node "
                    f"power no longer counted from here, energy so far kept: {e}"
                )
            return
        self.polls += 1
        if self._lost:
            self._lost = False
            self.warn(f"{self.device} ({self.model}) answers again: node power counted again")
        self._fails = 0
        self._record(self.clock(), p_w)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll_once()

    def start(self, t_mono: float, *, poll: bool = True) -> None:
        """Take the first reading (may take the BMC's latency) and start polling (``poll``:
        False leaves the polling to the caller of :meth:`poll_once`, for tests)."""
        self._t_start = t_mono
        with self._lock:
            self._energy_j, self._p_w, self._t_last = 0.0, None, t_mono
        try:
            p_w = self.poll_w()
        except MeterError as e:
            self.warn(f"{self.device} ({self.model}) first reading failed, retrying: {e}")
        else:
            with self._lock:
                self._p_w = p_w
        if poll and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="greentrack-bmc", daemon=True)
            self._thread.start()

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Node energy since :meth:`start` at ``t_mono`` (s), from the polled power. Cheap."""
        with self._lock:
            extra = self._p_w * max(0.0, t_mono - self._t_last) if self._p_w is not None else 0.0
            energy_j = self._energy_j + extra
            return [DeviceReading(NODE_COMPONENT, self.device, energy_j, self._p_w, "sampled")]

    def close(self) -> None:
        """Stop polling (waits at most one BMC timeout)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
