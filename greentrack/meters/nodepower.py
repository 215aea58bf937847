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

On a run the BMC is never waited for: :meth:`start` returns at once and the polling thread takes
the first reading (``deferred``); that reading stands for the moments before it too (its power
is held back to the start), which the meter's note says with the delay. A poll that fails is
retried at the next tick; after :data:`FAILS_BEFORE_LOST` failures in a row the node power is
held at 0 W from the last good reading on, with a warning (energy so far kept), and the node
figure is no longer :attr:`NodePowerMeter.complete`: the run's CO2e then comes from the
components (:mod:`greentrack.budget`).

Which figures count in a run's total is one rule, :func:`is_node`: a ``node:`` device is beside
the total, everything else is in it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from greentrack.errors import MeterError
from greentrack.meters.base import DeviceReading, Meter
from greentrack.sigmask import block_signals
from greentrack.units import J_PER_KWH, format_sig

__all__ = [
    "FAILS_BEFORE_LOST",
    "IPMI_DEVICES",
    "NODE_COMPONENT",
    "NODE_DEVICE",
    "NodePowerMeter",
    "is_node",
    "node_vs_components",
    "split_node",
]

NODE_COMPONENT = "node"
NODE_DEVICE = "node:bmc"
FAILS_BEFORE_LOST = 3
#: Where ipmitool looks for the kernel's IPMI device (``auto`` opens the meter only if one exists).
IPMI_DEVICES = ("/dev/ipmi0", "/dev/ipmi/0", "/dev/ipmidev/0")


def is_node(device_or_component: str) -> bool:
    """Whether a device id (``node:bmc``) or component name (``node``) is whole-node power:
    shown beside a run's total, never added to it."""
    return device_or_component == NODE_COMPONENT or device_or_component.startswith("node:")


def split_node(per_device: Mapping[str, float]) -> tuple[float, float | None]:
    """``(energy of the components, energy at the node or None)`` of ``{device: J}``. Units: J."""
    components_j = sum(v for d, v in per_device.items() if not is_node(d))
    node = [v for d, v in per_device.items() if is_node(d)]
    return components_j, (sum(node) if node else None)


def node_vs_components(node_j: float, components_j: float) -> str:
    """The line a run shows when it has node power: ``measured at the node: 1.23 kWh;
    components: 0.987 kWh (80% of the node)`` (three significant digits). Inputs in joules;
    the node figure is beside the components, never added to them. A share over 100 %
    (components above the wall: a BMC that reports something narrower, or estimates that
    overshoot) is printed as it is."""
    node_kwh, comp_kwh = format_sig(node_j / J_PER_KWH), format_sig(components_j / J_PER_KWH)
    share = f" ({components_j / node_j:.0%} of the node)" if node_j > 0 else ""
    return f"measured at the node: {node_kwh} kWh; components: {comp_kwh} kWh{share}"


class NodePowerMeter(Meter):
    """Base class: subclasses implement :meth:`poll_w` (one BMC reading, W; may be slow).

    Args:
        poll_s: seconds between polls (BMCs refresh about once a second).
        deferred: the first reading is the polling thread's, not :meth:`start`'s (runs: the
            user's code never waits for the BMC).
    """

    name = "node"
    device = NODE_DEVICE
    model = "BMC"

    def __init__(self, *, poll_s: float = 1.0, deferred: bool = False) -> None:
        super().__init__()
        self.poll_s = poll_s
        self.deferred = deferred
        self.first_delay_s: float | None = None  # start -> first good reading (deferred)
        self._ever_lost = False
        self._answered = False  # a reading came at least once
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
        self._prepared = True
        self.clock = time.monotonic  # what poll times are taken from (tests drive it)

    def poll_w(self) -> float:
        """One reading of the node's power now. Units: W. Raises :class:`MeterError`."""
        raise NotImplementedError

    @property
    def devices(self) -> list[str]:
        return [self.device]

    def describe(self) -> dict[str, str]:
        return {self.device: self.model}

    @property
    def complete(self) -> bool:
        """Whether the node figure covers the whole window so far: a first reading came and
        the BMC never stopped answering (a gap is counted at 0 W)."""
        return self._answered and not self._ever_lost

    def notes(self) -> dict[str, str]:
        note = (
            f"whole-node power from the BMC ({self.model}), polled every {self.poll_s:g} s: "
            "includes fans, PSU losses and every component; shown beside the components, "
            "not added to them"
        )
        if self.first_delay_s is not None and self.first_delay_s > 0.01:
            note += (
                f"; the first reading came {self.first_delay_s:.2f} s after the start and "
                "stands for that time too"
            )
        return {self.device: note}

    def prepare(self) -> None:
        """Find what to poll (e.g. the Redfish resource), in the polling thread before the
        first reading of a ``deferred`` meter. Raises :class:`MeterError`. Default: nothing."""

    def _record(self, t_mono: float, p_w: float | None) -> None:
        with self._lock:
            if self._p_w is not None and t_mono > self._t_last:
                self._energy_j += self._p_w * (t_mono - self._t_last)
            self._t_last = max(self._t_last, t_mono)
            self._p_w = p_w

    def poll_once(self) -> None:
        """One poll: read the BMC and record the power at ``self.clock()`` (never raises)."""
        try:
            if not self._prepared:
                self.prepare()
                self._prepared = True
            p_w = self.poll_w()
        except MeterError as e:
            self._fails += 1
            if self._p_w is None and self._fails == 1 and self.deferred:
                self.warn(f"{self.device} ({self.model}) first reading failed, retrying: {e}")
            if self._fails == FAILS_BEFORE_LOST and not self._lost:
                self._lost = self._ever_lost = True
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
        self._answered = True
        now = self.clock()
        if self._p_w is None and not self._ever_lost:  # the first reading: held back to start
            self.first_delay_s = max(0.0, now - self._t_start)
            with self._lock:
                self._p_w, self._t_last = p_w, self._t_start
        self._record(now, p_w)

    def _run(self) -> None:
        block_signals()
        if self.deferred:
            self.poll_once()
        while not self._stop.wait(self.poll_s):
            self.poll_once()

    def start(self, t_mono: float, *, poll: bool = True) -> None:
        """Start polling from ``t_mono`` (s). A meter that is not ``deferred`` takes the first
        reading here (the BMC's latency); a ``deferred`` one leaves it to the polling thread.
        ``poll``: False leaves the polling to the caller of :meth:`poll_once` (tests)."""
        self._t_start = t_mono
        with self._lock:
            self._energy_j, self._p_w, self._t_last = 0.0, None, t_mono
        self._answered = self._ever_lost = False
        self._prepared = not self.deferred
        if not self.deferred:
            try:
                p_w = self.poll_w()
            except MeterError as e:
                self.warn(f"{self.device} ({self.model}) first reading failed, retrying: {e}")
            else:
                with self._lock:
                    self._p_w = p_w
                self._answered = True
        if poll and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="greentrack-bmc", daemon=True)
            self._thread.start()

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Node energy since :meth:`start` at ``t_mono`` (s), from the polled power; nothing
        before the first reading (a BMC that never answers gives no node figure). Cheap."""
        with self._lock:
            if not self._answered:  # no reading yet: no figure at all
                return []
            extra = self._p_w * max(0.0, t_mono - self._t_last) if self._p_w is not None else 0.0
            energy_j = self._energy_j + extra
            return [DeviceReading(NODE_COMPONENT, self.device, energy_j, self._p_w, "sampled")]

    def close(self) -> None:
        """Stop polling. Waits at most 0.5 s: a BMC call in flight (a daemon thread, bounded by
        its own timeout) never holds the run's exit."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=0.5)
