"""What a run reports: its summary to the user (:class:`RunSummary`) and its checkpoints to the
store (:func:`make_checkpoint`).

Both are snapshots of the tracker's :class:`~greentrack.run.Run`, taken under its state lock:
the summary with totals per device and per phase path, a checkpoint with the rows new since the
previous one (samples, phases, metrics, events, params, tags) and the latest cumulative state
(components, run fields). Energies in joules (device energy; ``facility_energy_j`` includes PUE).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from greentrack.meters.base import Meter
from greentrack.meters.nodepower import is_node, node_vs_components
from greentrack.security import storable_tree
from greentrack.store.checkpoint import Checkpoint
from greentrack.units import J_PER_KWH, format_co2e, format_energy, format_sig

__all__ = [
    "ComponentEnergy",
    "PhaseSummary",
    "RunSummary",
    "book_phase",
    "make_checkpoint",
    "meter_notes",
    "phase_energy",
    "run_fields",
    "start_checkpoint",
    "summarize",
    "sync_accelerators",
]

log = logging.getLogger("greentrack")

#: (device, component, t_s, energy_j, power_w): one sample, as the sampler hands them
SamplePoint = tuple[str, str, float, float, "float | None"]


def _utc(ts: float) -> datetime:
    """Epoch seconds -> naive UTC datetime (the store's convention)."""
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class ComponentEnergy:
    """Energy of one device. Units: joules (device energy, before PUE)."""

    component: str
    device: str
    energy_j: float
    method: str
    rank: int = 0
    host: str | None = None


@dataclass(frozen=True)
class PhaseSummary:
    """Totals of one phase path (``epoch``, ``epoch/eval``) over its ``count`` occurrences."""

    name: str
    duration_s: float
    energy_j: float
    count: int = 1
    components: dict[str, float] = field(default_factory=dict)
    co2e_g: float | None = None


@dataclass(frozen=True)
class RunSummary:
    """What a run cost. Energies in joules (device energy; ``facility_energy_j`` includes PUE).

    ``energy_j`` and ``components`` are the measured components (GPUs, CPU, memory...);
    ``node`` holds the whole node's figure from its BMC where there is one (``node_energy_j``),
    beside them, never added. ``co2e_basis`` says which energy the CO2e is of: ``node`` (the
    node's energy × PUE) or ``components``.
    """

    id: str
    project: str
    name: str
    status: str
    duration_s: float
    energy_j: float
    pue: float
    components: list[ComponentEnergy]
    phases: list[PhaseSummary]
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    region: str | None = None
    co2e_g: float | None = None
    co2e_g_annual: float | None = None
    intensity_source: dict[str, Any] | None = None
    flops: float | None = None
    warnings: list[str] = field(default_factory=list)
    node: list[ComponentEnergy] = field(default_factory=list)
    co2e_basis: str | None = None

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    @property
    def node_energy_j(self) -> float | None:
        """The node's energy from its BMC (all of this process's node meters), or None. J."""
        return sum(c.energy_j for c in self.node) if self.node else None

    @property
    def facility_energy_j(self) -> float:
        return self.energy_j * self.pue

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["energy_kwh"] = self.energy_kwh
        d["node_energy_j"] = self.node_energy_j
        return d

    def __str__(self) -> str:
        lines = [
            f"run {self.id[:8]} {self.project}/{self.name}: {self.status}, {self.duration_s:.1f} s",
            f"  energy {format_energy(self.energy_j)} = {format_sig(self.energy_kwh)} kWh (device)"
            + (f", x PUE {self.pue:g}" if self.pue != 1.0 else ""),
        ]
        for c in self.components:
            lines.append(f"    {c.device:<20} {format_energy(c.energy_j):>12}  [{c.method}]")
        node_j = self.node_energy_j
        if node_j is not None:
            lines.append(f"  {node_vs_components(node_j, self.energy_j)}")
        if self.co2e_g is not None and self.intensity_source:
            src = self.intensity_source
            basis = " of the node's energy" if self.co2e_basis == "node" else ""
            lines.append(
                f"  CO2e{basis} {format_co2e(self.co2e_g)} ({src.get('name')} {src.get('zone')} "
                f"{src.get('kind')} {src.get('period')})"
            )
            if self.co2e_g_annual is not None:
                lines.append(f"  CO2e at the annual average: {format_co2e(self.co2e_g_annual)}")
        for p in self.phases:
            lines.append(
                f"  phase {p.name:<18} x{p.count:<4} {format_sig(p.duration_s):>9} s "
                f"{format_energy(p.energy_j):>12}"
            )
        for k, v in self.metrics.items():
            lines.append(f"  {k} = {v:g}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)


def summarize(run: Any) -> RunSummary:
    """The cost of ``run`` (the tracker's Run) so far, or final after its stop."""
    latest = run._sampler.latest if run._sampler else {}
    end = run.t1_mono if run.t1_mono is not None else time.monotonic()
    with run._state_lock:
        phases = [
            PhaseSummary(
                name=path,
                duration_s=t["duration_s"],
                energy_j=t["energy_j"],
                count=t["count"],
                components={d: e for d, e in t["components"].items() if not is_node(d)},
                co2e_g=t.get("co2e_g"),
            )
            for path, t in run._phase_totals.items()
        ]
        return RunSummary(
            id=run.id,
            project=run.project,
            name=run.name,
            status=run.status,
            duration_s=(end - run.t0_mono) if run.t0_mono else 0.0,
            energy_j=sum(r.energy_j for d, r in latest.items() if not is_node(d)),
            pue=run.pue,
            components=[
                ComponentEnergy(r.component, d, r.energy_j, r.method, run.rank, run.host)
                for d, r in sorted(latest.items())
                if not is_node(d)
            ],
            node=[
                ComponentEnergy(r.component, d, r.energy_j, r.method, run.rank, run.host)
                for d, r in sorted(latest.items())
                if is_node(d)
            ],
            co2e_basis=run._carbon.get("co2e_basis"),
            phases=phases,
            metrics=dict(run._last_metrics),
            params=dict(run.params),
            tags=dict(run.tags),
            region=run._carbon.get("region"),
            co2e_g=run._carbon.get("co2e_g"),
            co2e_g_annual=run._carbon.get("co2e_g_annual"),
            intensity_source=run._carbon.get("intensity_source"),
            flops=run._flops,
            warnings=list(run._warnings),
        )


def sync_accelerators() -> None:
    """Synchronise CUDA before a phase boundary's counter read, if the program already uses
    torch with CUDA (queued kernels belong to the phase that launched them)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_initialized():  # (cheap; is_available() may probe the driver)
            torch.cuda.synchronize()
    except RuntimeError:  # a broken CUDA context must not break the phase
        pass


def phase_energy(
    meters: Sequence[Meter],
    start: Mapping[str, Any],
    end: Mapping[str, Any],
    t0_mono: float,
    t1_mono: float,
) -> tuple[dict[str, float], set[str]]:
    """``({device: joules within the phase}, {methods other than the devices' own})`` from the
    readings at a phase's boundaries (``start``, ``end``: device -> reading with ``energy_j``);
    a meter may prefer another figure for a short window (``Meter.window_energy``)."""
    per_device = {
        d: r.energy_j - (start[d].energy_j if d in start else 0.0) for d, r in end.items()
    }
    methods: set[str] = set()
    for d, r in end.items():  # a meter may prefer another figure for a short window
        e0_j = start[d].energy_j if d in start else 0.0
        for meter in meters:
            try:
                better = meter.window_energy(d, t0_mono, t1_mono, e0_j, r.energy_j)
            except Exception:  # a meter's hook never breaks the user's phase
                log.exception("greentrack: internal error in %s.window_energy", meter.name)
                better = None
            if better is not None:
                per_device[d], method = better
                methods.add(method)
                break
    return per_device, methods


def book_phase(totals: dict[str, dict[str, Any]], row: dict[str, Any], spans_max: int) -> None:
    """Add one closed phase (its ``phases`` row) to ``totals`` (path -> count, duration_s,
    energy_j, components, and the spans its CO2e is accounted over at stop). The first
    ``spans_max`` occurrences of a path are kept one by one (each booked at its own intensity);
    later ones are merged into one ``overflow`` span, so memory stays bounded and none is lost."""
    t0_wall, t1_wall, energy_j = row["t0_s"], row["t1_s"], row["energy_j"]
    node_j = row.get("node_energy_j")
    tot = totals.setdefault(
        row["path"],
        {"count": 0, "duration_s": 0.0, "energy_j": 0.0, "components": {}, "spans": []},
    )
    tot["count"] += 1
    tot["duration_s"] += row["duration_s"]
    tot["energy_j"] += energy_j
    for d, e in row["components"].items():
        tot["components"][d] = tot["components"].get(d, 0.0) + e
    if node_j is not None:
        tot["node_energy_j"] = tot.get("node_energy_j", 0.0) + node_j
    # spans: (t0_s, t1_s, components J, node J or None): the CO2e is of one or the other
    if len(tot["spans"]) < spans_max:  # each occurrence booked at its own intensity
        tot["spans"].append((t0_wall, t1_wall, energy_j, node_j))
        tot.setdefault("rows", []).append(row)  # its CO2e at stop
    else:  # bounded memory: later occurrences are booked together, none is dropped
        t0, t1, e, n = tot.get("overflow") or (t0_wall, t1_wall, 0.0, None)
        if node_j is not None:
            n = (n or 0.0) + node_j
        tot["overflow"] = (min(t0, t0_wall), max(t1, t1_wall), e + energy_j, n)


# -- checkpoints ------------------------------------------------------------------------------
def meter_notes(meters: Sequence[Meter]) -> dict[str, str]:
    """``{device: one-line note of the assumptions behind its figure}`` from every meter's
    ``notes()`` (a meter without it, or one that fails, gives none)."""
    out: dict[str, str] = {}
    for m in meters:
        notes = getattr(m, "notes", None)
        if notes is None:
            continue
        try:
            got = notes()
        except Exception:  # a custom meter's bug never reaches the user's code
            continue
        if isinstance(got, Mapping):
            out.update({str(k): str(v) for k, v in got.items() if v})
    return out


def ensure_meta(run: Any) -> None:
    """Collect ``run``'s metadata (git, host; :mod:`greentrack.metadata`) once. Called before
    the run's lock is taken: ``stop()`` never waits on git behind a checkpoint's lock."""
    if run._meta is None:
        from greentrack.metadata import collect, secret_values

        run._meta = storable_tree(  # the command line may hold undecodable bytes
            collect(
                run._device_models,
                [*secret_values(run.config.providers), *run._mask.secrets],
            )
        )


def run_fields(run: Any, final: bool) -> dict[str, Any]:
    """The run row's fields for a checkpoint of ``run`` (times as naive UTC datetimes)."""
    ensure_meta(run)
    now_mono = run.t1_mono if final and run.t1_mono is not None else time.monotonic()
    fields: dict[str, Any] = {
        "project": run.project,
        "name": run.name,
        "status": run.status if final else "running",
        "started_at": _utc(run.t0_wall),
        "heartbeat_at": _utc(time.time()),
        "duration_s": now_mono - run.t0_mono,
        "pue": run.pue,
        "host": run.host,
        "pid": os.getpid(),
        "world_size": run.world_size,
        "checkpoint_s": run.checkpoint_s,
        "meta": run._meta,
        "flops": run._flops,
        "plan": run._plan,
        "region": run._carbon.get("region") or run.region_arg,
    }
    forecast = run._cost.forecast(run)
    if forecast:
        fields["forecast"] = forecast
    if final:
        fields["ended_at"] = _utc(run.t0_wall + (now_mono - run.t0_mono))
        fields["error"] = run.error
        for k in (
            "region_origin",
            "co2e_g",
            "co2e_g_annual",
            "intensity_source",
            "intensity_series",
            "embodied_g",
            "embodied",
        ):
            if k in run._carbon:
                fields[k] = run._carbon[k]
    return fields


def make_checkpoint(run: Any, points: Sequence[SamplePoint], *, final: bool) -> Checkpoint:
    """The next checkpoint of ``run``: ``points`` (the sampler's new samples), everything pending
    since the last one, and the latest cumulative state. Its pending lists start afresh."""
    assert run._sampler is not None
    notes = {**run._notes, **meter_notes(run._sampler.meters)}
    ensure_meta(run)  # outside the lock (git takes milliseconds)
    with run._state_lock:
        # each device's CO2e (after stop's accounting): the store sums every rank's, on the
        # node's energy where a rank accounted it so (greentrack.store.writer)
        device_g = run._carbon.get("device_co2e_g") or {} if final else {}
        device_annual_g = run._carbon.get("device_co2e_g_annual") or {} if final else {}
        run._seq += 1
        latest = dict(run._sampler.latest)
        cp = Checkpoint(
            run_id=run.id,
            rank=run.rank,
            seq=run._seq,
            run=run_fields(run, final),
            owner=run.owner,
            components=[
                {
                    "component": r.component,
                    "device": d,
                    "energy_j": r.energy_j,
                    "method": r.method,
                    "model": run._device_models.get(d),
                    "note": notes.get(d),
                    "host": run.host,
                    "co2e_g": device_g.get(d),
                    "co2e_g_annual": device_annual_g.get(d),
                }
                for d, r in sorted(latest.items())
            ],
            samples=[
                {"device": d, "component": c, "t_s": t, "energy_j": e, "power_w": p}
                for d, c, t, e, p in points
            ],
            phases=run._pending_phases,
            metrics=run._pending_metrics,
            events=run._pending_events,
            params=run._pending_params,
            tags=run._pending_tags,
            phase_fill=dict(run._phase_fill) if final else {},
        )
        run._pending_phases, run._pending_metrics, run._pending_events = [], [], []
        run._pending_params, run._pending_tags = {}, {}
    return cp


def start_checkpoint(run: Any) -> Checkpoint:
    """The checkpoint that makes ``run``'s start durable: the run row as ``running``."""
    fields = {
        "project": run.project,
        "name": run.name,
        "status": "running",
        "started_at": _utc(run.t0_wall),
        "heartbeat_at": _utc(run.t0_wall),
        "pue": run.pue,
        "host": run.host,
        "pid": os.getpid(),
        "world_size": run.world_size,
        "checkpoint_s": run.checkpoint_s,
    }
    return Checkpoint(run_id=run.id, rank=run.rank, seq=0, run=fields, owner=run.owner)
