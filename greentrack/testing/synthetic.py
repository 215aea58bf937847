"""Deterministic synthetic runs written straight into a store, for tests, examples and benchmarks.

A synthetic run has the shape of a tracked one — devices with methods, samples, phases, metrics,
parameters, tags, metadata, an intensity series and CO₂e — but every number follows from its
arguments, so reports built from it are byte-for-byte stable (golden files) and benchmarks can
make a run of a million samples or a store of ten thousand runs in seconds. Nothing here is
hard-coded into a result: CO₂e is accounted from the written energy and the given intensity
series with greentrack's own accounting, exactly as for a real run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from greentrack.units import J_PER_KWH

__all__ = ["DeviceSpec", "SyntheticRun", "write_runs"]


@dataclass
class DeviceSpec:
    """One simulated device: ``power_w`` mean power, ``ripple`` relative amplitude of a periodic
    wave (period ``period_s``), ``eval_factor`` the power multiplier during eval phases."""

    device: str
    component: str
    power_w: float
    method: str = "counter"
    model: str | None = None
    ripple: float = 0.1
    period_s: float = 120.0
    eval_factor: float = 0.5
    note: str | None = None  # the meter's assumption note (components.note)


@dataclass
class SyntheticRun:
    """Everything a synthetic run is made of. Times are epoch seconds UTC.

    ``phases`` are ``(name, start_fraction, end_fraction)`` of the run; ``metrics`` map a key to
    ``[(step, value), ...]``; ``intensity_g_per_kwh`` is an hourly series starting at the hour
    ``start_s`` falls in (None: no carbon figures); ``annual_g_per_kwh`` the static comparison;
    ``intensity_source`` its provenance (default: ``csv <region> average <the series' period>``).
    """

    run_id: str
    project: str = "demo"
    name: str = "train"
    start_s: float = 1767268800.0  # 2026-01-01T12:00:00Z
    duration_s: float = 3600.0
    samples: int = 61
    devices: Sequence[DeviceSpec] = ()
    pue: float = 1.0
    region: str | None = "ES"
    intensity_g_per_kwh: Sequence[float] | None = (150.0, 120.0)
    intensity_source: Mapping[str, str] | None = None
    annual_g_per_kwh: float | None = 174.05
    phases: Sequence[tuple[str, float, float]] = (("train", 0.0, 0.9), ("eval", 0.9, 1.0))
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)
    flops: float | None = None
    status: str = "finished"
    error: str | None = None
    host: str = "node-1"
    cpu_model: str = "AMD EPYC 7742 64-Core Processor"
    events: Sequence[tuple[str, str]] = ()
    plan: Mapping[str, Any] | None = None


def _utc(t_s: float) -> datetime:
    return datetime.fromtimestamp(t_s, UTC).replace(tzinfo=None)


def _hour(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _power(spec: DeviceSpec, t_rel: Any, eval_mask: Any) -> Any:
    import numpy as np

    p = spec.power_w * (1.0 + spec.ripple * np.sin(2 * math.pi * t_rel / spec.period_s))
    return np.where(eval_mask, p * spec.eval_factor, p)


def checkpoints(run: SyntheticRun, *, batch: int = 200_000) -> list[Any]:
    """The run as store checkpoints (samples split into batches of ``batch`` points)."""
    import numpy as np

    from greentrack.carbon.accounting import co2e_g
    from greentrack.carbon.series import IntensitySeries, Provenance
    from greentrack.store.checkpoint import Checkpoint

    n = max(int(run.samples), 2)
    t_rel = np.linspace(0.0, run.duration_s, n)  # (n,)
    t_abs = run.start_s + t_rel
    mid = np.concatenate(([0.0], (t_rel[:-1] + t_rel[1:]) / 2))
    eval_mask = np.zeros(n, dtype=bool)
    for name, f0, f1 in run.phases:
        if name == "eval":
            eval_mask |= (mid >= f0 * run.duration_s) & (mid < f1 * run.duration_s)
    series = None
    if run.intensity_g_per_kwh:
        hour0 = math.floor(run.start_s / 3600.0) * 3600.0
        src = dict(run.intensity_source or {})
        if not src:
            n_h = len(run.intensity_g_per_kwh)
            src = {
                "name": "csv",
                "zone": run.region or "",
                "kind": "average",
                "period": f"{_hour(hour0)}/{_hour(hour0 + 3600.0 * n_h)}",
                "detail": "synthetic hourly series",
            }
        series = IntensitySeries(
            hour0 + 3600.0 * np.arange(len(run.intensity_g_per_kwh)),
            np.asarray(run.intensity_g_per_kwh, dtype=np.float64),
            3600.0,
            Provenance(
                src.get("name", "csv"),
                src.get("zone", run.region or ""),
                src.get("kind", "average"),
                src.get("period", ""),
                src.get("detail", ""),
            ),
        )
    per_device = []
    total_j = 0.0
    co2e_total = 0.0
    for spec in run.devices:
        p = _power(spec, mid, eval_mask)  # (n,) mean W over the interval ending at each point
        p[0] = p[1]
        e = np.concatenate(([0.0], np.cumsum(p[1:] * np.diff(t_rel))))  # cumulative J
        per_device.append((spec, p, e))
        total_j += float(e[-1])
        if series is not None:
            co2e_total += float(co2e_g(t_abs[:-1], t_abs[1:], np.diff(e) * run.pue, series).sum())
    phases = []
    for i, (name, f0, f1) in enumerate(run.phases):
        t0, t1 = f0 * run.duration_s, f1 * run.duration_s
        comps = {}
        for spec, _p, e in per_device:
            comps[spec.device] = float(np.interp(t1, t_rel, e) - np.interp(t0, t_rel, e))
        energy = sum(comps.values())
        phase_g = None
        if series is not None:
            phase_g = float(co2e_g(run.start_s + t0, run.start_s + t1, energy * run.pue, series))
        phases.append(
            {
                "id": f"{run.run_id[:24]}{i:08x}",
                "name": name,
                "path": name,
                "depth": 0,
                "started_at": _utc(run.start_s + t0),
                "ended_at": _utc(run.start_s + t1),
                "t0_s": run.start_s + t0,
                "t1_s": run.start_s + t1,
                "duration_s": t1 - t0,
                "energy_j": energy,
                "components": comps,
                "co2e_g": phase_g,
            }
        )
    fields: dict[str, Any] = {
        "project": run.project,
        "name": run.name,
        "status": run.status,
        "started_at": _utc(run.start_s),
        "ended_at": _utc(run.start_s + run.duration_s),
        "heartbeat_at": _utc(run.start_s + run.duration_s),
        "duration_s": run.duration_s,
        "energy_j": total_j,
        "pue": run.pue,
        "region": run.region,
        "region_origin": "argument" if run.region else None,
        "host": run.host,
        "pid": 4242,
        "world_size": 1,
        "checkpoint_s": 10.0,
        "error": run.error,
        "flops": run.flops,
        "plan": dict(run.plan) if run.plan else None,
        "meta": {
            "host": run.host,
            "os": "Linux 6.1",
            "python": "3.11.7",
            "cpu_model": run.cpu_model,
            "cpu_count": 128,
            "gpu_models": sorted(
                {d.model for d in run.devices if d.component == "gpu" and d.model}
            ),
            "command": ["python", "train.py"],
            "cwd": "/work",
            "pid": 4242,
        },
    }
    if series is not None:
        window = series.g_per_kwh.tolist()
        fields.update(
            co2e_g=co2e_total,
            co2e_g_annual=(
                total_j * run.pue / J_PER_KWH * run.annual_g_per_kwh
                if run.annual_g_per_kwh is not None
                else None
            ),
            intensity_source=src,
            intensity_series={
                "start_s": float(series.start_s[0]),
                "step_s": series.step_s,
                "g_per_kwh": window,
            },
        )
    metric_rows = []
    for key, points in run.metrics.items():
        for k, (step, value) in enumerate(points):
            frac = (k + 1) / len(points)
            metric_rows.append(
                {
                    "key": key,
                    "step": step,
                    "value": float(value),
                    "t_s": run.start_s + frac * run.duration_s,
                }
            )
    events = [
        {
            "id": f"{run.run_id[:24]}e{i:07x}",
            "t_s": run.start_s,
            "level": level,
            "source": "synthetic",
            "message": message,
        }
        for i, (level, message) in enumerate(run.events)
    ]
    cps = []
    for seq, b0 in enumerate(range(0, n, batch), start=1):
        b1 = min(n, b0 + batch)
        samples = []
        for spec, p, e in per_device:
            samples += [
                {
                    "device": spec.device,
                    "component": spec.component,
                    "t_s": float(t),
                    "energy_j": float(ee),
                    "power_w": float(pp),
                }
                for t, ee, pp in zip(
                    t_abs[b0:b1].tolist(), e[b0:b1].tolist(), p[b0:b1].tolist(), strict=True
                )
            ]
        last = b1 == n
        cps.append(
            Checkpoint(
                run_id=run.run_id,
                rank=0,
                seq=seq,
                run=fields,
                components=[
                    {
                        "component": spec.component,
                        "device": spec.device,
                        "energy_j": float(e[b1 - 1]),
                        "method": spec.method,
                        "model": spec.model,
                        "note": spec.note,
                        "host": run.host,
                    }
                    for spec, _p, e in per_device
                ],
                samples=samples,
                phases=phases if last else [],
                metrics=metric_rows if last else [],
                events=events if last else [],
                params={str(k): str(v) for k, v in run.params.items()} if seq == 1 else {},
                tags={str(k): str(v) for k, v in run.tags.items()} if seq == 1 else {},
            )
        )
    return cps


def write_runs(url: str, runs: Sequence[SyntheticRun], *, batch: int = 200_000) -> list[str]:
    """Write synthetic runs into the store at ``url``; returns their ids."""
    from greentrack.store.writer import StoreWriter

    writer = StoreWriter(url)
    try:
        for run in runs:
            for cp in checkpoints(run, batch=batch):
                writer.write(cp)
    finally:
        writer.close()
    return [r.run_id for r in runs]


# --------------------------------------------------------------------------------------------
# A ready-made project: tuning runs, seeds, and a final run (the golden files use it)
# --------------------------------------------------------------------------------------------


def gpu_host(gpus: int = 1, *, gpu_w: float = 250.0, cpu_w: float = 60.0) -> list[DeviceSpec]:
    """GPUs read by their energy counter, a RAPL CPU package (counter) and estimated RAM."""
    devs = [
        DeviceSpec(f"gpu:{i}", "gpu", gpu_w, "counter", "NVIDIA A100-SXM4-40GB")
        for i in range(gpus)
    ]
    devs.append(
        DeviceSpec(
            "cpu:0",
            "cpu",
            cpu_w,
            "counter",
            "AMD EPYC 7742 64-Core Processor",
            ripple=0.05,
            eval_factor=0.8,
        )
    )
    devs.append(
        DeviceSpec(
            "ram:estimate",
            "ram",
            24.0,
            "estimated",
            "512 GiB",
            ripple=0.0,
            eval_factor=1.0,
            note="synthetic: a constant 24 W standing in for a RAM power model's output",
        )
    )
    return devs


def demo_project(project: str = "cifar", *, hex_prefix: str = "3f2a") -> list[SyntheticRun]:
    """A small, fixed development history: 4 learning-rate trials, 3 seeds of the chosen setting
    (the seed 0 one tagged ``final=true``)."""
    runs = []
    base = 1767268800.0  # 2026-01-01T12:00:00Z
    hour_series = (150.0, 120.0, 90.0, 110.0, 160.0, 140.0)
    for i, lr in enumerate((0.3, 0.1, 0.03, 0.01)):
        runs.append(
            SyntheticRun(
                run_id=f"9b1c{i:04x}" + "0" * 24,
                project=project,
                name="resnet18-sweep",
                start_s=base + 1800.0 * i,
                duration_s=1200.0 + 60.0 * i,
                samples=41,
                devices=gpu_host(1, gpu_w=240.0 + 5 * i),
                pue=1.2,
                intensity_g_per_kwh=hour_series,
                params={"lr": lr, "seed": 0, "epochs": 10},
                metrics={"accuracy": [(e, 0.5 + 0.03 * e + 0.01 * i) for e in range(10)]},
                flops=1.2e15,
            )
        )
    for s in range(3):
        runs.append(
            SyntheticRun(
                run_id=f"{hex_prefix}{s:04x}" + "0" * 24,
                project=project,
                name="resnet18",
                start_s=base + 7200.0 + 3600.0 * s,
                duration_s=3000.0 + 120.0 * s,
                samples=61,
                devices=gpu_host(2),
                pue=1.2,
                intensity_g_per_kwh=(*hour_series, 100.0, 95.0, 105.0),
                params={"lr": 0.03, "seed": s, "epochs": 30, "params_total": 11_689_512},
                tags={"final": "true"} if s == 0 else {},
                metrics={
                    "accuracy": [(e, 0.80 + 0.004 * e + 0.003 * s) for e in range(30)],
                    "loss": [(e, 1.0 / (e + 1)) for e in range(30)],
                },
                flops=3.6e15,
            )
        )
    return runs
