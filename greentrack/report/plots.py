"""Figures for papers and reports: pure functions from data to an image file (matplotlib, Agg).

Every function takes plain data (arrays, run objects, dicts) and a target — a path whose suffix
picks the format (``.svg``, ``.png``, ``.pdf``) or a binary file object with ``fmt=`` — and
returns the target. matplotlib is imported inside the functions, so importing this module is
cheap.

Print-safe by construction: every series differs by line style (and marker) as well as colour
(Okabe–Ito palette), phases and plan segments are told apart by hatch patterns, and layouts are
``constrained`` with legends outside the axes, so labels do not overlap. Long series are drawn as
a min–max envelope with the time-weighted mean per time bucket (see
:func:`greentrack.report.data.envelope`) — never more points than the figure has pixels — and the
axis label says so.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from greentrack.errors import ConfigError
from greentrack.report.data import DeviceSeries, envelope, iso_to_s

__all__ = [
    "plot_energy",
    "plot_intensity",
    "plot_pareto",
    "plot_power",
    "plot_schedule",
    "svg_text",
]

Target = str | Path | IO[bytes]

#: Okabe–Ito colours (colour-blind safe), paired with distinct line styles and markers.
COLORS = ("#000000", "#E69F00", "#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)), (0, (8, 2)), "-")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
HATCHES = ("//", "\\\\", "..", "xx", "oo", "--", "++", "**")
DEFAULT_BUCKETS = 800
"""Time buckets of a power plot: about the axes' width in pixels at 150 dpi."""
FIGSIZE = (6.4, 3.4)


@contextlib.contextmanager
def _figure(figsize: tuple[float, float] = FIGSIZE) -> Iterator[Any]:
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    style = {
        "font.size": 8.5,
        "axes.titlesize": 9.5,
        "axes.grid": True,
        "grid.alpha": 0.35,
        "grid.linewidth": 0.5,
        "lines.linewidth": 1.3,
        "hatch.linewidth": 0.6,
        "legend.fontsize": 7.5,
        "legend.frameon": False,
        "svg.hashsalt": "greentrack",
    }
    with matplotlib.rc_context(style):
        fig = Figure(figsize=figsize, layout="constrained")
        yield fig


def _save(fig: Any, target: Target, fmt: str | None) -> Target:
    if isinstance(target, str | Path):
        path = Path(target)
        fmt = fmt or path.suffix.lstrip(".").lower() or "svg"
        if fmt not in ("svg", "png", "pdf"):
            raise ConfigError(f"cannot write a {fmt!r} figure ({path}); use .svg, .png or .pdf")
        path.parent.mkdir(parents=True, exist_ok=True)
        out: Any = path
    else:
        fmt = fmt or "svg"
        out = target
    metadata = {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else {})
    fig.savefig(out, format=fmt, dpi=150, metadata=metadata)
    return target


def svg_text(plot: Any, *args: Any, **kwargs: Any) -> str:
    """Run a plot function into an inline ``<svg>`` string (text kept as text, no XML header)."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        plot(*args, buf, fmt="svg", **kwargs)
    text = buf.getvalue().decode("utf-8")
    start = text.find("<svg")
    text = text[start:] if start >= 0 else text
    # the RDF metadata block only names namespaces and matplotlib's site: drop it
    a, b = text.find("<metadata>"), text.find("</metadata>")
    if 0 <= a < b:
        text = text[:a] + text[b + len("</metadata>") :]
    return text


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def as_device_series(samples: Any) -> list[DeviceSeries]:
    """:class:`DeviceSeries` from a list of them or from ``queries.run_samples``' dict of arrays."""
    import numpy as np

    if isinstance(samples, Mapping):
        out = []
        dev = np.asarray(samples["device"], dtype=object)
        rank = np.asarray(samples.get("rank", np.zeros(dev.size, dtype=np.int64)))
        comp = np.asarray(samples["component"], dtype=object)
        keys = sorted({(int(r), str(d)) for r, d in zip(rank, dev, strict=True)})
        for r, d in keys:
            m = (rank == r) & (dev == d)
            order = np.argsort(np.asarray(samples["t_s"])[m], kind="stable")
            out.append(
                DeviceSeries(
                    d,
                    str(comp[m][0]),
                    r,
                    np.asarray(samples["t_s"], dtype=np.float64)[m][order],
                    np.asarray(samples["energy_j"], dtype=np.float64)[m][order],
                    np.asarray(samples["power_w"], dtype=np.float64)[m][order],
                )
            )
        return out
    return list(samples)


def time_unit(span_s: float) -> tuple[float, str]:
    if span_s > 2 * 3600:
        return 3600.0, "h"
    if span_s > 120:
        return 60.0, "min"
    return 1.0, "s"


def top_phases(phases: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, float]]:
    """Depth-0 phase occurrences as (name, t0_s, t1_s)."""
    out = []
    for p in phases:
        if "/" in str(p.get("path") or p.get("name")):
            continue
        t0 = p.get("t0_s")
        if t0 is None:
            t0 = iso_to_s(p.get("started_at"))
        if t0 is None or p.get("duration_s") is None:
            continue
        out.append((str(p.get("name")), float(t0), float(t0) + float(p["duration_s"])))
    return out


def _shade_phases(
    ax: Any, phases: Sequence[tuple[str, float, float]], start_s: float, scale: float
) -> list[Any]:
    """Phases as a hatched strip along the top of the axes (one hatch per phase name), with a
    faint line at each boundary: readable in grayscale without hiding the data."""
    from matplotlib.patches import Patch

    names: list[str] = []
    for name, _, _ in phases:
        if name not in names:
            names.append(name)
    handles = []
    for i, name in enumerate(names[: len(HATCHES)]):
        hatch = HATCHES[i]
        for n, t0, t1 in phases:
            if n != name:
                continue
            x0, x1 = (t0 - start_s) / scale, (t1 - start_s) / scale
            ax.axvspan(
                x0,
                x1,
                ymin=0.93,
                ymax=1.0,
                facecolor="white",
                edgecolor="0.35",
                hatch=hatch,
                linewidth=0.4,
                zorder=4,
            )
            ax.axvline(x0, color="0.6", linewidth=0.5, linestyle=":", zorder=0)
        handles.append(
            Patch(facecolor="white", edgecolor="0.35", hatch=hatch, label=f"phase: {name}")
        )
    return handles


def _legend(fig: Any, ax: Any, extra: Sequence[Any] = ()) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles += list(extra)
    labels += [h.get_label() for h in extra]
    if handles:
        width = sum(len(str(label)) + 6 for label in labels)
        ncols = min(4, len(handles)) if width <= 90 else max(1, min(len(handles), 2))
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols)


# --------------------------------------------------------------------------------------------
# Power and energy over a run
# --------------------------------------------------------------------------------------------


def plot_power(
    samples: Any,
    target: Target,
    *,
    fmt: str | None = None,
    start_s: float | None = None,
    phases: Sequence[Mapping[str, Any]] = (),
    title: str | None = None,
    buckets: int = DEFAULT_BUCKETS,
) -> Target:
    """Power per device over the run, phases hatched.

    Args:
        samples: the run's samples (``load_samples`` list or ``run_samples`` dict). ``power_w``
            is the mean power since the previous point, drawn as a step.
        start_s: the run start (epoch s; default: the first sample).
        phases: the run object's ``phases`` (depth-0 ones are shaded).
        buckets: above ``2 × buckets`` points a device is drawn as a min–max envelope plus the
            time-weighted mean per bucket.
    """
    series = [s for s in as_device_series(samples) if s.t_s.size]
    if not series:
        raise ConfigError("the run has no samples to plot; was it tracked with a meter?")
    t0 = start_s if start_s is not None else min(float(s.t_s[0]) for s in series)
    span = max(float(s.t_s[-1]) for s in series) - t0
    scale, unit = time_unit(span)
    reduced_note = ""
    with _figure() as fig:
        ax = fig.subplots()
        total_points = sum(max(s.points, s.t_s.size) for s in series)
        for i, s in enumerate(series):
            style = {"color": COLORS[i % len(COLORS)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}
            if s.reduced:  # read in buckets by the database: each point ends its bucket
                x = (s.t_s - t0) / scale
                ax.fill_between(
                    x, s.low, s.high, step="pre", color=style["color"], alpha=0.18, linewidth=0
                )
                ax.plot(x, s.power_w, drawstyle="steps-pre", label=s.label, **style)
                width = (s.t_s[-1] - s.t_s[0]) / max(s.t_s.size - 1, 1)
                reduced_note = _envelope_note(width, total_points)
                continue
            env = envelope(s.t_s, s.power_w, buckets)
            x = (env.t_s - t0) / scale
            if env.reduced:
                ax.fill_between(
                    x, env.low, env.high, step="mid", color=style["color"], alpha=0.18, linewidth=0
                )
                ax.plot(x, env.mean, drawstyle="steps-mid", label=s.label, **style)
                reduced_note = _envelope_note(env.bucket_s, total_points)
            else:
                # power_w[k] is the mean over (t[k-1], t[k]]: a step ending at each point
                ax.plot(x, env.mean, drawstyle="steps-pre", label=s.label, **style)
        ax.set_xlim(0, max(span / scale, 1e-9))
        handles = _shade_phases(ax, top_phases(phases), t0, scale)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.1)  # headroom for the phase strip
        ax.set_xlabel(f"time since start ({unit})" + reduced_note)
        ax.set_ylabel("power (W)")
        ax.set_title(title or "Power per device")
        _legend(fig, ax, handles)
        return _save(fig, target, fmt)


def _envelope_note(bucket_s: float, points: int) -> str:
    return f"\nmin–max envelope and mean per {bucket_s:.3g} s bucket ({points:,} samples)"


def plot_energy(
    samples: Any,
    target: Target,
    *,
    fmt: str | None = None,
    start_s: float | None = None,
    phases: Sequence[Mapping[str, Any]] = (),
    title: str | None = None,
    max_points: int = 2000,
) -> Target:
    """Cumulative energy per device and their total (kWh or kJ), phases hatched.

    Cumulative energy is monotone, so long series are drawn from ``max_points`` evenly spaced
    points (every bucket's last value kept), which is exact at the drawn points.
    """
    import numpy as np

    series = [s for s in as_device_series(samples) if s.t_s.size]
    if not series:
        raise ConfigError("the run has no samples to plot; was it tracked with a meter?")
    t0 = start_s if start_s is not None else min(float(s.t_s[0]) for s in series)
    t_end = max(float(s.t_s[-1]) for s in series)
    span = t_end - t0
    scale, unit = time_unit(span)
    total_j = sum(float(s.energy_j[-1]) for s in series)
    e_scale, e_unit = (
        (3.6e6, "kWh") if total_j >= 3.6e5 else ((1e3, "kJ") if total_j >= 1e3 else (1.0, "J"))
    )
    note = ""
    with _figure() as fig:
        ax = fig.subplots()
        grid = np.linspace(t0, t_end, min(max_points, 4000)) if span > 0 else np.array([t0])
        total = np.zeros_like(grid)
        for i, s in enumerate(series):
            n = s.t_s.size
            if n > max_points:
                keep = np.unique(np.linspace(0, n - 1, max_points).astype(np.int64))
                note = f"\n{max_points:,} of {n:,} points per device drawn (exact at each point)"
            else:
                keep = np.arange(n)
            if s.reduced:
                note = (
                    f"\nthe last of every {len(s.t_s):,}th of {s.points:,} samples drawn "
                    "(exact at each point)"
                )
            ax.plot(
                (s.t_s[keep] - t0) / scale,
                s.energy_j[keep] / e_scale,
                label=s.label,
                color=COLORS[(i + 1) % len(COLORS)],
                linestyle=LINESTYLES[(i + 1) % len(LINESTYLES)],
            )
            total += np.interp(grid, s.t_s, s.energy_j, left=0.0)
        if len(series) > 1:
            ax.plot(
                (grid - t0) / scale,
                total / e_scale,
                label="total",
                color=COLORS[0],
                linestyle="-",
                linewidth=2.0,
            )
        handles = _shade_phases(ax, top_phases(phases), t0, scale)
        ax.set_xlim(0, max(span / scale, 1e-9))
        ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
        ax.set_xlabel(f"time since start ({unit})" + note)
        ax.set_ylabel(f"energy since start ({e_unit}, device)")
        ax.set_title(title or "Cumulative energy")
        _legend(fig, ax, handles)
        return _save(fig, target, fmt)


# --------------------------------------------------------------------------------------------
# Carbon intensity
# --------------------------------------------------------------------------------------------


def _series_arrays(series: Any) -> tuple[Any, Any, float, str]:
    """(start_s array, g_per_kwh array, step_s, provenance label) of a series or its JSON."""
    import numpy as np

    if hasattr(series, "g_per_kwh") and hasattr(series, "provenance"):
        return (
            np.asarray(series.start_s, dtype=np.float64),
            np.asarray(series.g_per_kwh, dtype=np.float64),
            float(series.step_s),
            series.provenance.label(),
        )
    if not isinstance(series, Mapping) or "g_per_kwh" not in series:
        raise ConfigError("an intensity series needs start_s, step_s and g_per_kwh")
    values = np.asarray(series["g_per_kwh"], dtype=np.float64)
    step = float(series.get("step_s") or 3600.0)
    start = np.asarray(series["start_s"], dtype=np.float64)
    if start.ndim == 0:
        start = float(start) + step * np.arange(values.size)
    label = str(series.get("label") or "")
    return start, values, step, label


def _dates(t_s: Any) -> Any:
    import numpy as np

    return np.array([datetime.fromtimestamp(float(t), UTC).replace(tzinfo=None) for t in t_s])


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def plot_intensity(
    series: Any,
    target: Target,
    *,
    fmt: str | None = None,
    run_start_s: float | None = None,
    run_end_s: float | None = None,
    time_weighted_g_per_kwh: float | None = None,
    annual_g_per_kwh: float | None = None,
    provenance: Mapping[str, Any] | str | None = None,
    title: str | None = None,
) -> Target:
    """Grid carbon intensity over a run (the run's stored ``intensity_series``), run window
    hatched, with the run's time-weighted figure and the static annual average as lines."""
    import numpy as np

    start, values, step, label = _series_arrays(series)
    if isinstance(provenance, Mapping):
        label = " ".join(
            str(provenance[k]) for k in ("name", "zone", "kind", "period") if provenance.get(k)
        )
    elif provenance:
        label = str(provenance)
    edges = np.append(start, start[-1] + step)
    lo = min(edges[0], run_start_s if run_start_s is not None else edges[0])
    hi = max(edges[-1], run_end_s if run_end_s is not None else edges[-1])
    with _figure() as fig:
        ax = fig.subplots()
        ax.stairs(
            values,
            _dates(edges),
            color=COLORS[0],
            linewidth=1.4,
            label="grid intensity (step series)",
            baseline=None,
        )
        if run_start_s is not None and run_end_s is not None:
            d0, d1 = _dates([run_start_s, max(run_end_s, run_start_s + 1e-3)])
            ax.axvspan(
                d0,
                d1,
                facecolor="none",
                edgecolor="0.4",
                hatch="//",
                linewidth=0,
                label="the run",
                zorder=0,
            )
        if time_weighted_g_per_kwh is not None:
            ax.axhline(
                time_weighted_g_per_kwh,
                color=COLORS[4],
                linestyle="--",
                label=f"run, time-weighted: {time_weighted_g_per_kwh:.4g} g/kWh",
            )
        if annual_g_per_kwh is not None:
            ax.axhline(
                annual_g_per_kwh,
                color=COLORS[2],
                linestyle=":",
                linewidth=1.6,
                label=f"annual average: {annual_g_per_kwh:.4g} g/kWh",
            )
        ax.set_xlim(*_dates([lo, hi]))
        ymax = max(
            [float(np.nanmax(values))]
            + [v for v in (time_weighted_g_per_kwh, annual_g_per_kwh) if v]
        )
        ax.set_ylim(0, ymax * 1.15 if ymax > 0 else 1.0)
        _date_axis(ax)
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("carbon intensity (g CO$_2$e/kWh)")
        ax.set_title(title or ("Carbon intensity: " + label if label else "Carbon intensity"))
        _legend(fig, ax)
        return _save(fig, target, fmt)


# --------------------------------------------------------------------------------------------
# Accuracy versus energy across runs
# --------------------------------------------------------------------------------------------


def _minor_label(value: float, _pos: int) -> str:
    """Label the 2 and 5 minor ticks of a log axis (plain numbers), so short ranges get ticks."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if round(mantissa, 6) in (2.0, 5.0) else ""


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points no other point beats on both energy (lower) and metric, by energy."""
    order = sorted(
        range(len(points)),
        key=lambda i: (points[i][0], -points[i][1] if higher_is_better else points[i][1]),
    )
    front, best = [], -math.inf
    for i in order:
        m = points[i][1] if higher_is_better else -points[i][1]
        if m > best:
            front.append(i)
            best = m
    return front


def plot_pareto(
    points: Sequence[Mapping[str, Any]],
    target: Target,
    *,
    fmt: str | None = None,
    metric: str = "accuracy",
    higher_is_better: bool = True,
    title: str | None = None,
    max_labels: int = 10,
) -> Target:
    """Metric versus facility energy across runs (log x axis), Pareto front dashed.

    Args:
        points: ``{"energy_kwh", "value", "label", "final"}`` per run.
        metric: the metric's name (axis label).
        higher_is_better: False for losses and errors.
    """
    pts = [p for p in points if p.get("value") is not None and (p.get("energy_kwh") or 0) > 0]
    if not pts:
        raise ConfigError(
            f"no run has both energy and the metric {metric!r}; log it with run.log({metric}=...)"
        )
    from matplotlib.ticker import FuncFormatter

    xy = [(float(p["energy_kwh"]), float(p["value"])) for p in pts]
    front = pareto_front(xy, higher_is_better)
    with _figure() as fig:
        ax = fig.subplots()
        fin = [i for i, p in enumerate(pts) if p.get("final")]
        rest = [i for i, p in enumerate(pts) if not p.get("final")]
        if rest:
            ax.scatter(
                [xy[i][0] for i in rest],
                [xy[i][1] for i in rest],
                marker="o",
                facecolors="none",
                edgecolors=COLORS[2],
                label="development runs",
            )
        if fin:
            ax.scatter(
                [xy[i][0] for i in fin],
                [xy[i][1] for i in fin],
                marker="*",
                s=110,
                color=COLORS[0],
                label="final runs",
                zorder=3,
            )
        fx = [xy[i][0] for i in front]
        fy = [xy[i][1] for i in front]
        ax.plot(
            fx, fy, drawstyle="steps-post", linestyle="--", color=COLORS[4], label="Pareto front"
        )
        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(FuncFormatter(_minor_label))
        ax.margins(x=0.15, y=0.12)
        fig.canvas.draw()  # positions in pixels, to keep labels apart
        placed: list[tuple[float, float]] = []
        for i in front:
            if len(placed) >= max_labels:
                break
            px, py = ax.transData.transform(xy[i])
            if any(abs(px - qx) < 150 and abs(py - qy) < 22 for qx, qy in placed):
                continue  # would overlap a label already drawn
            placed.append((px, py))
            ax.annotate(
                str(pts[i].get("label", ""))[:24],
                xy[i],
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=6.5,
            )
        ax.set_xlabel("facility energy per run (kWh, log scale)")
        ax.set_ylabel(metric + ("" if higher_is_better else " (lower is better)"))
        ax.set_title(title or f"{metric} versus energy ({len(pts)} runs)")
        _legend(fig, ax)
        return _save(fig, target, fmt)


# --------------------------------------------------------------------------------------------
# A schedule plan over its intensity forecast
# --------------------------------------------------------------------------------------------


def _plan_segments(plan: Any) -> list[tuple[float, float]]:
    d = plan.to_dict() if hasattr(plan, "to_dict") else dict(plan)
    if d.get("segments_s"):
        return [(float(a), float(b)) for a, b in d["segments_s"]]
    return [(iso_to_s(s["start"]), iso_to_s(s["end"])) for s in d.get("segments") or []]  # type: ignore[misc]


def plot_schedule(
    series: Any, plan: Any, target: Target, *, fmt: str | None = None, title: str | None = None
) -> Target:
    """A plan's run segments (hatched) over the intensity series it was planned on.

    Args:
        series: an :class:`~greentrack.carbon.series.IntensitySeries` or ``{start_s, step_s,
            g_per_kwh}``.
        plan: a :class:`~greentrack.schedule.Plan` or its ``to_dict()`` (``segments_s`` or
            ``segments``, ``submitted``, ``deadline``, ``duration_s``, ``strategy``,
            ``saving_pct``; all optional but the segments).
    """
    import numpy as np

    d = plan.to_dict() if hasattr(plan, "to_dict") else dict(plan)
    segs = _plan_segments(d)
    if not segs:
        raise ConfigError("the plan has no segments; pass the JSON of `greentrack schedule`")
    start, values, step, label = _series_arrays(series)
    src = d.get("source")
    if isinstance(src, Mapping):
        label = " ".join(str(src[k]) for k in ("name", "zone", "kind", "period") if src.get(k))
    submitted = iso_to_s(d.get("submitted")) if isinstance(d.get("submitted"), str) else None
    deadline = iso_to_s(d.get("deadline")) if isinstance(d.get("deadline"), str) else None
    lo = min([segs[0][0]] + ([submitted] if submitted else []))
    hi = max([segs[-1][1]] + ([deadline] if deadline else []))
    pad = max((hi - lo) * 0.08, step)
    lo, hi = lo - pad, hi + pad
    edges = np.append(start, start[-1] + step)
    keep = (edges[1:] > lo) & (edges[:-1] < hi)
    with _figure() as fig:
        ax = fig.subplots()
        idx = np.flatnonzero(keep)
        if idx.size:
            e = edges[idx[0] : idx[-1] + 2]
            ax.stairs(
                values[idx[0] : idx[-1] + 1],
                _dates(e),
                color=COLORS[0],
                linewidth=1.4,
                label="intensity (g CO$_2$e/kWh)",
                baseline=None,
            )
        strategy = str(d.get("strategy") or "plan").replace("_", " ")
        for k, (a, b) in enumerate(segs):
            da, db = _dates([a, b])
            ax.axvspan(
                da,
                db,
                facecolor="none",
                edgecolor=COLORS[3],
                hatch="//",
                linewidth=0.8,
                label=f"planned run ({strategy})" if k == 0 else None,
                zorder=0,
            )
        if submitted is not None and d.get("duration_s"):
            da, db = _dates([submitted, submitted + float(d["duration_s"])])
            ax.axvspan(
                da,
                db,
                facecolor="none",
                edgecolor=COLORS[1],
                hatch="..",
                linewidth=0.8,
                label="run now (for comparison)",
                zorder=0,
            )
        if submitted is not None:
            ax.axvline(_dates([submitted])[0], color=COLORS[2], linestyle="-.", label="submitted")
        if deadline is not None:
            ax.axvline(
                _dates([deadline])[0],
                color=COLORS[4],
                linestyle=":",
                linewidth=1.6,
                label="deadline",
            )
        ax.set_xlim(*_dates([lo, hi]))
        ax.set_ylim(bottom=0)
        _date_axis(ax)
        ax.set_xlabel("time (UTC)" + (f"\nintensity: {label}" if label else ""))
        ax.set_ylabel("carbon intensity (g CO$_2$e/kWh)")
        saving = d.get("saving_pct")
        ax.set_title(
            title
            or (
                f"Schedule: {strategy}"
                + (f", {saving:.1f} % less CO$_2$e than running now" if saving is not None else "")
            )
        )
        _legend(fig, ax)
        return _save(fig, target, fmt)
