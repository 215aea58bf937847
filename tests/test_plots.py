"""Figures: every kind renders to SVG (parses) and PNG (not blank); downsampling keeps spikes and
energy; the Pareto front; the schedule plot from a real Plan; the plot command."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.cli import main
from greentrack.errors import ConfigError
from greentrack.report import gridplots, pareto, plotting, runplots
from greentrack.report.data import envelope
from greentrack.store.reads import DeviceSeries
from greentrack.testing.synthetic import demo_project, write_runs

SVG_NS = "{http://www.w3.org/2000/svg}"


def check_svg(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == SVG_NS + "svg"
    assert len(list(root.iter(SVG_NS + "path"))) > 10  # axes, ticks, lines: not an empty figure
    return root


def check_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.stat().st_size > 15_000
    img = mpimg.imread(path)[..., :3]
    assert img.shape[0] > 300 and img.shape[1] > 600
    assert float(img.std()) > 0.02, "blank image"
    assert (img.mean(axis=2) < 0.5).mean() > 0.003, "almost nothing dark was drawn"


def device(n: int, *, spike_at: int | None = None, t0: float = 1.7e9) -> DeviceSeries:
    t = t0 + np.arange(n, dtype=np.float64)  # 1 s apart
    p = np.full(n, 100.0)
    if spike_at is not None:
        p[spike_at] = 900.0
    e = np.concatenate(([0.0], np.cumsum(p[1:])))
    return DeviceSeries("gpu:0", "gpu", 0, t, e, p)


def test_envelope_keeps_spikes_and_energy() -> None:
    d = device(100_000, spike_at=31_337)
    env = envelope(d.t_s, d.power_w, buckets=500)
    assert env.reduced and env.t_s.size == 500 and env.points == 100_000
    assert np.nanmax(env.high) == 900.0 and np.nanmin(env.low) == 100.0
    # time-weighted means x bucket widths add up to the energy (within one sample's share)
    energy = np.nansum(env.mean) * env.bucket_s
    assert energy == pytest.approx(d.energy_j[-1], rel=2e-3)
    short = envelope(d.t_s[:50], d.power_w[:50], buckets=500)
    assert not short.reduced and np.array_equal(short.mean, d.power_w[:50])


def test_envelope_leaves_gaps_empty() -> None:
    t = np.concatenate((np.arange(0, 5000.0), np.arange(20000.0, 25000.0)))
    env = envelope(t, np.ones_like(t), buckets=100)
    assert np.isnan(env.mean).sum() > 40  # the 15,000 s gap is not drawn as data


def test_power_energy_and_intensity_svg_and_png(tmp_path: Path) -> None:
    devs = [device(3000), device(3000, spike_at=10)]
    devs[1].device = "cpu:0"
    phases = [
        {"name": "train", "path": "train", "t0_s": 1.7e9, "duration_s": 2000.0},
        {"name": "eval", "path": "eval", "t0_s": 1.7e9 + 2000, "duration_s": 999.0},
        {"name": "inner", "path": "train/inner", "t0_s": 1.7e9, "duration_s": 5.0},
    ]
    for suffix in ("svg", "png"):
        p = runplots.plot_power(devs, tmp_path / f"power.{suffix}", phases=phases)
        e = runplots.plot_energy(devs, tmp_path / f"energy.{suffix}", phases=phases)
        i = gridplots.plot_intensity(
            {"start_s": 1.7e9 - 600, "step_s": 3600.0, "g_per_kwh": [200.0, 150.0, 90.0]},
            tmp_path / f"intensity.{suffix}",
            run_start_s=1.7e9,
            run_end_s=1.7e9 + 3000,
            time_weighted_g_per_kwh=180.0,
            annual_g_per_kwh=250.0,
            provenance={"name": "csv", "zone": "ES", "kind": "average", "period": "2023"},
        )
        for path in (p, e, i):
            (check_svg if suffix == "svg" else check_png)(Path(path))
    inline = plotting.svg_text(runplots.plot_power, devs, phases=phases)
    assert inline.startswith("<svg") and "phase: train" in inline and "phase: eval" in inline
    assert "phase: inner" not in inline  # only top-level phases are shaded
    assert "<metadata>" not in inline


def test_a_million_samples_are_drawn_as_an_envelope(tmp_path: Path) -> None:
    d = device(1_000_000, spike_at=777_777)
    svg = plotting.svg_text(runplots.plot_power, [d])
    assert "min–max envelope" in svg and "1,000,000 samples" in svg
    assert len(svg) < 600_000  # bounded by the figure's pixels, not by the samples
    out = runplots.plot_energy([d], tmp_path / "e.svg")
    assert Path(out).stat().st_size < 600_000


def test_pareto_front_and_plot(tmp_path: Path) -> None:
    pts = [(1.0, 0.8), (2.0, 0.85), (1.5, 0.7), (4.0, 0.85), (0.5, 0.6), (3.0, 0.9)]
    assert pareto.pareto_front(pts) == [4, 0, 1, 5]
    assert pareto.pareto_front([(1.0, 0.5), (2.0, 0.3)], higher_is_better=False) == [0, 1]
    points = [
        {"energy_kwh": x, "value": y, "label": f"r{i}", "final": i == 5}
        for i, (x, y) in enumerate(pts)
    ]
    check_png(Path(pareto.plot_pareto(points, tmp_path / "p.png")))
    check_svg(Path(pareto.plot_pareto(points, tmp_path / "p.svg", metric="top-1")))
    inline = plotting.svg_text(pareto.plot_pareto, points)
    assert "log scale" in inline and "Pareto front" in inline and "final runs" in inline
    with pytest.raises(ConfigError, match="no run has both"):
        pareto.plot_pareto([{"energy_kwh": 1.0, "value": None}], tmp_path / "x.png")


def _series() -> IntensitySeries:
    g = 200 + 100 * np.sin(np.arange(48) / 24 * 2 * np.pi)
    return IntensitySeries(
        1767225600.0 + 3600.0 * np.arange(48),
        g,
        3600.0,
        Provenance("csv", "ES", "average", "2026-01-01/2026-01-03"),
    )


def test_schedule_plot_from_a_real_plan(tmp_path: Path) -> None:
    from greentrack.scheduling.planner import plan_series

    series = _series()
    p = plan_series(
        series,
        1767225600.0 + 3600,
        6 * 3600.0,
        strategy="pause_resume",
        within_s=24 * 3600.0,
        min_run_s=3600.0,
    )
    check_svg(Path(gridplots.plot_schedule(series, p, tmp_path / "plan.svg")))
    check_png(Path(gridplots.plot_schedule(series, p.to_dict(), tmp_path / "plan.png")))
    # plain data too: the series as JSON, the plan as `greentrack schedule --format json` prints
    data = {
        "start_s": float(series.start_s[0]),
        "step_s": 3600.0,
        "g_per_kwh": series.g_per_kwh.tolist(),
    }
    plan_json = json.loads(json.dumps(p.to_dict()))
    inline = plotting.svg_text(gridplots.plot_schedule, data, plan_json)
    assert "planned run (pause resume)" in inline and "run now" in inline and "deadline" in inline
    with pytest.raises(ConfigError, match="no segments"):
        gridplots.plot_schedule(data, {"segments": []}, tmp_path / "bad.svg")


def test_bad_targets_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write a 'gif' figure"):
        runplots.plot_power([device(10)], tmp_path / "x.gif")
    with pytest.raises(ConfigError, match="no samples"):
        runplots.plot_power([], tmp_path / "x.svg")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_plot_command_every_kind(sqlite_url: str, tmp_path: Path) -> None:
    write_runs(sqlite_url, demo_project())
    for kind in ("power", "energy", "intensity"):
        code, out = invoke(
            "plot",
            "3f2a0000",
            "--kind",
            kind,
            "-o",
            str(tmp_path / f"{kind}.svg"),
            "--db",
            sqlite_url,
        )
        assert code == 0, out
        check_svg(tmp_path / f"{kind}.svg")
    code, out = invoke(
        "plot",
        "--project",
        "cifar",
        "--kind",
        "pareto",
        "-o",
        str(tmp_path / "pareto.png"),
        "--db",
        sqlite_url,
    )
    assert code == 0, out
    check_png(tmp_path / "pareto.png")
    # a schedule plan from JSON over a CSV series
    from greentrack.scheduling.planner import plan_series

    csv_path = tmp_path / "ES.csv"
    s = _series()
    csv_path.write_text(  # the Electricity Maps download layout
        "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct)\n"
        + "".join(
            f"{str(np.datetime64(int(t), 's')).replace('T', ' ')},ES,{g:.2f}\n"
            for t, g in zip(s.start_s, s.g_per_kwh, strict=True)
        )
    )
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(
        json.dumps(plan_series(s, float(s.start_s[2]), 3 * 3600.0, within_s=12 * 3600.0).to_dict())
    )
    code, out = invoke(
        "plot",
        "--kind",
        "schedule",
        "--plan",
        str(plan_path),
        "--csv",
        str(csv_path),
        "-o",
        str(tmp_path / "plan.svg"),
        "--db",
        sqlite_url,
    )
    assert code == 0, out
    check_svg(tmp_path / "plan.svg")
    code, out = invoke(
        "plot", "3f2a0000", "--kind", "schedule", "-o", str(tmp_path / "x.svg"), "--db", sqlite_url
    )
    assert code == 1 and "was not scheduled" in out and out.count("\n") == 1
    code, out = invoke(
        "plot",
        "3f2a0000",
        "9b1c0000",
        "--kind",
        "power",
        "-o",
        str(tmp_path / "x.svg"),
        "--db",
        sqlite_url,
    )
    assert code == 1 and "one run" in out


def test_the_database_reduces_long_series(store_url: str) -> None:
    """load_samples(buckets=...) reads min/max/last per bucket: spikes and energy survive."""
    from greentrack.report.data import store
    from greentrack.store.reads import load_samples
    from greentrack.testing.synthetic import DeviceSpec, SyntheticRun

    run = SyntheticRun(
        run_id="dd" + "0" * 30,
        duration_s=5000.0,
        samples=5001,
        devices=[DeviceSpec("gpu:0", "gpu", 200.0, ripple=0.3, period_s=77.0)],
    )
    write_runs(store_url, [run])
    with store(store_url) as conn:
        (full,) = load_samples(conn, run.run_id)
        (red,) = load_samples(conn, run.run_id, buckets=100)
    assert not full.reduced and full.t_s.size == 5001
    assert red.reduced and red.points == 5001 and 90 <= red.t_s.size <= 100
    assert red.t_s[-1] == full.t_s[-1] and red.energy_j[-1] == pytest.approx(full.energy_j[-1])
    assert np.nanmax(red.high) == pytest.approx(np.nanmax(full.power_w))
    assert np.nanmin(red.low) == pytest.approx(np.nanmin(full.power_w))
    # mean power x time between consecutive points is exactly the energy between them
    energy = np.sum(red.power_w[1:] * np.diff(red.t_s))
    assert energy == pytest.approx(red.energy_j[-1] - red.energy_j[0], rel=1e-9)
    svg = plotting.svg_text(runplots.plot_power, [red])
    assert "5,001 samples" in svg and "envelope" in svg
