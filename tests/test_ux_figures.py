"""Figures people look at (issue 17, item 15): no text off the canvas, no overlapping labels, no
legend over the data, bars apart in grayscale, time axes that start at the run's start and
always carry labels. Every matplotlib figure greentrack draws goes through ``figure_problems``
(text extents from the figure's own renderer)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from figcheck import figure_problems, hatched_or_distinct

from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.cli import main
from greentrack.report import gridplots, pareto, plotting, runplots
from greentrack.scheduling.study import study_files
from greentrack.scheduling.study_plot import study_figure
from greentrack.store.reads import DeviceSeries
from greentrack.workloads import output as bench_output
from greentrack.workloads.results import BenchResult

DATA = Path(__file__).resolve().parent / "data"
ES_4D = DATA / "em_ES_2022-03-01_4d.csv"
SVG = "{http://www.w3.org/2000/svg}"

# The README's bench table (README "Reference efficient models"): the layout that overlapped.
README_BENCH = """transformer_shapes|-|shapes|7.06|0.809
early_exit|transformer_shapes|shapes|3.52|0.821
distill|transformer_shapes|shapes|1.11|0.810
int8|transformer_shapes|shapes|10.2|0.808
prune|transformer_shapes|shapes|9.43|0.818
prune_csr|transformer_shapes|shapes|19.4|0.818
transformer_lm|-|char_lm|53.9|0.253
moe|transformer_lm|char_lm|107|0.258
sparse_ffn|transformer_lm|char_lm|80.9|0.251
transformer_listops|-|listops|19.1|0.414
rfa|transformer_listops|listops|19.3|0.415
abc|transformer_listops|listops|14.5|0.349
backprop_mlp|-|shapes_flat|1.61|0.764
dfa|backprop_mlp|shapes_flat|1.59|0.775"""


def bench_results() -> list[BenchResult]:
    out = []
    for line in README_BENCH.splitlines():
        name, base, task, energy, acc = line.split("|")
        row = BenchResult(name, None if base == "-" else base, task, float(acc), 100, 50, 1e6,
                            10.0, float(energy), None, "estimated", 1.0, 0.1, 0.1, 0.1, None,
                            "id", {})  # fmt: skip
        out.append(row)
    return out


# ----------------------------------------------------------------------- the checker itself


def test_the_checker_sees_clipped_overlapping_and_covering_text() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.bar([0, 1], [1, 1], label="bars")
    fig.suptitle("a title far too long to fit on a figure only three inches wide, clipped")
    ax.text(0.5, 0.5, "one", transform=ax.transAxes)
    ax.text(0.5, 0.5, "two", transform=ax.transAxes)
    ax.legend(loc="center")
    problems = figure_problems(fig)
    assert any("leaves the canvas" in p for p in problems), problems
    assert any("'one' and 'two' overlap" in p for p in problems), problems
    assert any("covers a bar" in p for p in problems), problems


# ----------------------------------------------------------------------- schedule study --plot


@pytest.mark.parametrize("zones", [1, 4])
def test_study_figure_is_clean_and_grayscale_safe(zones: int) -> None:
    results = []
    for _ in range(zones):
        results += study_files([ES_4D], ["1h", "6h", "24h"], "24h", min_run="1h")
    fig = study_figure(results)
    assert figure_problems(fig) == []
    ax = fig.axes[0]
    first_group = [ax.patches[k * 3] for k in range(4)]  # one bar of each series, same job
    assert hatched_or_distinct(first_group)
    assert {p.get_hatch() or "" for p in first_group} == {"", "//"}
    assert fig.legends and not any(a.get_legend() for a in fig.axes)  # below the panels


def test_schedule_study_plot_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "study.png"
    result = CliRunner().invoke(
        main,
        ["schedule", "study", "--csv", str(ES_4D), "--duration", "1h,6h", "--within", "24h",
         "--min-run", "1h", "--plot", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000


# ---------------------------------------------------------------------------- bench --plot


def test_bench_pareto_figure_keeps_labels_apart_and_inside() -> None:
    fig = bench_output.pareto_figure(bench_results())
    assert figure_problems(fig) == []
    renderer = fig.canvas.get_renderer()
    names = {r.workload for r in bench_results()}
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        for t in ax.texts:
            if t.get_text() in names:
                bb = t.get_window_extent(renderer)
                assert frame.x0 <= bb.x0 and bb.x1 <= frame.x1, t.get_text()  # prune_csr too
                assert frame.y0 <= bb.y0 and bb.y1 <= frame.y1, t.get_text()
    labelled = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert names <= labelled


def test_bench_plot_writes_the_png(tmp_path: Path) -> None:
    out = tmp_path / "pareto.png"
    bench_output.plot_pareto(bench_results(), str(out))
    assert out.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------- report figures (runplots, gridplots...)


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    figs: list[Any] = []
    real = plotting.save

    def save(fig: Any, target: Any, fmt: str | None) -> Any:
        figs.append(fig)
        return real(fig, target, fmt)

    monkeypatch.setattr(plotting, "save", save)
    return figs


def _device(name: str, n: int, t0: float = 1.7e9) -> DeviceSeries:
    t = t0 + 1.0 + np.arange(n, dtype=np.float64)  # the first sample 1 s after the start
    p = np.full(n, 100.0)
    return DeviceSeries(name, name.split(":")[0], 0, t, 100.0 * (t - t0), p)


def test_report_figures_are_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from greentrack.scheduling.planner import plan_series

    figs = _capture(monkeypatch)
    devs = [_device("gpu:0", 3000), _device("cpu:0", 3000)]
    phases = [
        {"name": "train", "path": "train", "t0_s": 1.7e9, "duration_s": 2000.0},
        {"name": "eval", "path": "eval", "t0_s": 1.7e9 + 2000, "duration_s": 999.0},
    ]
    runplots.plot_power(devs, tmp_path / "power.png", phases=phases, start_s=1.7e9)
    runplots.plot_energy(devs, tmp_path / "energy.png", phases=phases, start_s=1.7e9)
    gridplots.plot_intensity(
        {"start_s": 1.7e9 - 600, "step_s": 3600.0, "g_per_kwh": [200.0, 150.0, 90.0]},
        tmp_path / "intensity.png",
        run_start_s=1.7e9,
        run_end_s=1.7e9 + 3000,
        time_weighted_g_per_kwh=180.0,
        annual_g_per_kwh=250.0,
        provenance={"name": "csv", "zone": "ES", "kind": "average", "period": "2023"},
    )
    pts = [(1.0, 0.8), (2.0, 0.85), (1.5, 0.7), (4.0, 0.85), (0.5, 0.6), (3.0, 0.9)]
    pareto.plot_pareto(
        [{"energy_kwh": x, "value": y, "label": f"r{i}", "final": i == 5}
         for i, (x, y) in enumerate(pts)],
        tmp_path / "pareto.png",
    )  # fmt: skip
    g = 200 + 100 * np.sin(np.arange(48) / 24 * 2 * np.pi)
    series = IntensitySeries(
        1767225600.0 + 3600.0 * np.arange(48), g, 3600.0, Provenance("csv", "ES", "average", "p")
    )
    plan = plan_series(
        series, 1767225600.0 + 3600, 6 * 3600.0, strategy="pause_resume",
        within_s=24 * 3600.0, min_run_s=3600.0,
    )  # fmt: skip
    gridplots.plot_schedule(series, plan, tmp_path / "plan.png")
    assert len(figs) == 5
    for fig in figs:
        assert figure_problems(fig) == [], fig.axes[0].get_title()


# --------------------------------------------------------------------- the dashboard's charts


def _svg_texts(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(SVG + "text"))


def test_dashboard_power_starts_at_zero_and_intensity_has_time_labels() -> None:
    from greentrack.report.site import run_charts

    t0 = 1_796_112_805.42
    devs = [_device("gpu:0", 20, t0)]  # 1 s interval: the first sample at t = 1 s
    run = {
        "id": "abcdef0123456789",
        "started_at": "2026-12-01T08:13:25.420000Z",
        "ended_at": "2026-12-01T08:13:46.420000Z",
        "phases": [],
        # the static source: one annual value, a 1 s step (what codecarbon-static stores)
        "intensity_series": {"start_s": t0, "step_s": 1.0, "g_per_kwh": [174.05]},
        "intensity_source": {"name": "codecarbon-static", "zone": "ES", "kind": "average"},
    }
    charts = dict(run_charts(run, devs))
    power = next(svg for cap, svg in charts.items() if cap.startswith("Power"))
    root = ET.fromstring(power)
    first = next(iter(root.iter(SVG + "polyline"))).get("points").split()[0]
    frame = next(r for r in root.iter(SVG + "rect") if r.get("fill") == "none")
    assert float(first.split(",")[0]) == pytest.approx(float(frame.get("x")))  # x = 0, not 1 s
    assert float(first.split(",")[1]) == pytest.approx(
        float(next(iter(root.iter(SVG + "polyline"))).get("points").split()[2].split(",")[1])
    )  # the first second is drawn at the mean power over it (100 W), not invented
    energy = next(svg for cap, svg in charts.items() if cap.startswith("Cumulative"))
    e_first = next(iter(ET.fromstring(energy).iter(SVG + "polyline"))).get("points").split()[0]
    assert float(e_first.split(",")[0]) == pytest.approx(float(frame.get("x")))
    intensity = next(svg for cap, svg in charts.items() if cap.startswith("Grid"))
    clock = [t.text for t in _svg_texts(intensity) if t.text and re.fullmatch(r"[\d:.]+", t.text)]
    clock = [c for c in clock if ":" in c]
    assert len(clock) >= 2, clock  # a labelled time axis even for a 21 s run
