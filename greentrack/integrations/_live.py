"""The figures an integration publishes while a run goes on, made from one checkpoint.

Every exporting integration (Prometheus, MLflow, TensorBoard, W&B) publishes the same figures, so
they are made once, here, from what the tracker hands a listener:

* energy per device: the checkpoint's cumulative energy (J), with the device's method
  (``counter``, ``sampled``, ``estimated``) — the same figure the store gets;
* power per device: the *mean* power over the last checkpoint interval (W), i.e. the energy
  difference between two checkpoints divided by the run time between them (the first interval
  starts at the run's start with 0 J) — not an instantaneous reading;
* CO2e while running: energy × PUE × the grid intensity the run's source gives for the run's
  start (``co2e_basis="live"``, an estimate that ignores how intensity changes during the run);
  at stop: the run's own interval-by-interval accounting (``co2e_basis="accounted"``), or None
  where no intensity was available.

Nothing here imports anything optional; the work per checkpoint is a few dict reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greentrack.meters.nodepower import split_node
from greentrack.units import J_PER_KWH

__all__ = ["DeviceFigure", "FigureTracker", "LiveFigures", "metric_key", "metric_values"]


@dataclass(frozen=True)
class DeviceFigure:
    """One device's figures. Units: ``energy_j`` joules (cumulative), ``power_w`` watts (mean over
    the last checkpoint interval; None before any time has passed)."""

    component: str
    device: str
    method: str
    energy_j: float
    power_w: float | None


@dataclass(frozen=True)
class LiveFigures:
    """A run's figures at one checkpoint (or at its stop, ``final=True``).

    Units: ``duration_s`` seconds since the start, ``energy_j`` joules (device energy, PUE not
    applied), ``co2e_g`` grams CO2e (PUE applied), ``g_per_kwh`` grams per kWh.
    ``devices`` may include the node's own figure (``node:bmc``, from its BMC):
    ``node_energy_j`` is its sum, beside ``energy_j`` (the components), never in it.
    """

    run_id: str
    project: str
    name: str
    duration_s: float
    energy_j: float
    pue: float
    devices: tuple[DeviceFigure, ...]
    co2e_g: float | None
    co2e_basis: str | None  # "live" (energy × PUE × intensity at the start) or "accounted"
    g_per_kwh: float | None
    final: bool
    node_energy_j: float | None = None

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def live_intensity(run: Any) -> float | None:
    """The grid intensity (g/kWh) the run's source gave for its start, once the checkpoint thread
    has resolved it (None before, or where no source answers)."""
    carbon = getattr(run, "_carbon", None)
    if isinstance(carbon, Mapping):
        return _finite(carbon.get("g_per_kwh_now"))
    return None


class FigureTracker:
    """Turns a run's successive checkpoints into :class:`LiveFigures` (one per run; it keeps each
    device's previous reading for the mean power).

    Power is taken between the device's last kept readings (the checkpoint's samples: wall time
    and cumulative energy of one reading each, so exact; the first checkpoint holds the reading
    at the start), else between the checkpoints' own times, from the run's start with 0 J.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}  # device -> (wall s, energy_j)
        self._power: dict[str, float] = {}  # device -> the last power from kept readings

    def _devices(
        self,
        run: Any,
        rows: list[tuple[str, str, str, float]],
        wall_s: float,
        readings: Mapping[str, tuple[tuple[float, float], tuple[float, float]]],
    ) -> list[DeviceFigure]:
        t0 = _finite(getattr(run, "t0_wall", None)) or wall_s
        out = []
        for component, device, method, energy_j in rows:
            if device not in readings and device in self._power:
                # no reading kept since the last checkpoint: its mean power still stands
                out.append(DeviceFigure(component, device, method, energy_j, self._power[device]))
                continue
            first, last = readings.get(device, ((t0, 0.0), (wall_s, energy_j)))
            t_prev, e_prev = self._last.get(device, first)
            t_now, e_now = last
            power_w = (e_now - e_prev) / (t_now - t_prev) if t_now > t_prev else None
            if power_w is not None:
                self._last[device] = (t_now, e_now)
                if device in readings:
                    self._power[device] = power_w
            out.append(DeviceFigure(component, device, method, energy_j, power_w))
        return out

    def from_checkpoint(self, run: Any, checkpoint: Any) -> LiveFigures:
        """Figures of a checkpoint (the tracker's ``Checkpoint`` or its dict form)."""
        fields = _field(checkpoint, "run", None) or {}
        t_s = _finite(_field(fields, "duration_s")) or 0.0
        rows = [
            (
                str(c.get("component") or ""),
                str(c.get("device") or ""),
                str(c.get("method") or ""),
                _finite(c.get("energy_j")) or 0.0,
            )
            for c in (_field(checkpoint, "components", None) or [])
        ]
        readings: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
        for p in _field(checkpoint, "samples", None) or []:  # in time order
            t, e = _finite(p.get("t_s")), _finite(p.get("energy_j"))
            if t is not None and e is not None:
                device = str(p.get("device"))
                first = readings[device][0] if device in readings else (t, e)
                readings[device] = (first, (t, e))
        t0 = _finite(getattr(run, "t0_wall", None)) or 0.0
        if not t0 or not _finite(getattr(run, "t0_mono", None)):
            # the first checkpoint can come before start() has set the run's baseline: its
            # duration_s is then not a duration (the monotonic clock's value); it is the start
            t_s = 0.0
        elif readings:  # the readings' own time (the checkpoint's may be made a little earlier)
            t_s = max(0.0, max(last[0] for _, last in readings.values()) - t0)
        devices = self._devices(run, rows, t0 + t_s, readings)
        energy_j, node_j = split_node({d.device: d.energy_j for d in devices})
        pue = _finite(getattr(run, "pue", 1.0)) or 1.0
        g = live_intensity(run)
        final_co2e = _finite(fields.get("co2e_g")) if isinstance(fields, Mapping) else None
        if final_co2e is not None:
            co2e, basis = final_co2e, "accounted"
        elif g is not None:  # of the node's energy where its BMC measures it, as at stop
            co2e, basis = (energy_j if node_j is None else node_j) * pue / J_PER_KWH * g, "live"
        else:
            co2e, basis = None, None
        return LiveFigures(
            run_id=str(getattr(run, "id", "")),
            project=str(getattr(run, "project", "")),
            name=str(getattr(run, "name", "")),
            duration_s=t_s,
            energy_j=energy_j,
            pue=pue,
            devices=tuple(devices),
            co2e_g=co2e,
            co2e_basis=basis,
            g_per_kwh=g,
            final=False,
            node_energy_j=node_j,
        )

    def from_summary(self, run: Any, summary: Any) -> LiveFigures:
        """Figures at stop, from the run's :class:`~greentrack.summary.RunSummary`."""
        t_s = _finite(_field(summary, "duration_s")) or 0.0
        rows = [
            (
                str(_field(c, "component") or ""),
                str(_field(c, "device") or ""),
                str(_field(c, "method") or ""),
                _finite(_field(c, "energy_j")) or 0.0,
            )
            for c in [
                *(_field(summary, "components", None) or []),
                *(_field(summary, "node") or []),
            ]
        ]
        t0 = _finite(getattr(run, "t0_wall", None)) or 0.0
        devices = self._devices(run, rows, t0 + t_s, {})
        energy_j, node_j = split_node({d.device: d.energy_j for d in devices})
        co2e = _finite(_field(summary, "co2e_g"))
        return LiveFigures(
            run_id=str(_field(summary, "id") or getattr(run, "id", "")),
            project=str(_field(summary, "project") or getattr(run, "project", "")),
            name=str(_field(summary, "name") or getattr(run, "name", "")),
            duration_s=t_s,
            energy_j=energy_j,
            pue=_finite(_field(summary, "pue")) or 1.0,
            devices=tuple(devices),
            co2e_g=co2e,
            co2e_basis="accounted" if co2e is not None else None,
            g_per_kwh=live_intensity(run),
            final=True,
            node_energy_j=node_j,
        )


def metric_key(device: str) -> str:
    """A device id as a metric-name part (``gpu:0`` stays; characters MLflow, TensorBoard and
    W&B do not all take become ``_``)."""
    return "".join(ch if ch.isalnum() or ch in "-_.: " else "_" for ch in device)


def metric_values(f: LiveFigures) -> dict[str, float]:
    """The metrics every exporting integration logs (key -> value): ``greentrack/energy_kwh``,
    ``greentrack/co2e_g`` (when known), ``greentrack/energy_kwh/<device>`` and
    ``greentrack/power_w/<device>``."""
    out = {"greentrack/energy_kwh": f.energy_kwh}
    if f.co2e_g is not None:
        out["greentrack/co2e_g"] = f.co2e_g
    for d in f.devices:
        out[f"greentrack/energy_kwh/{metric_key(d.device)}"] = d.energy_j / J_PER_KWH
        if d.power_w is not None:
            out[f"greentrack/power_w/{metric_key(d.device)}"] = d.power_w
    return out
