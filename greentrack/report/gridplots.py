"""Figures of the grid: carbon intensity over a run, and a schedule plan over its forecast.

Both draw an intensity step series on a UTC date axis, the run or the plan's segments hatched.
Style and saving: :mod:`greentrack.report.plotting`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from greentrack.errors import ConfigError
from greentrack.report import plotting
from greentrack.report.data import iso_to_s
from greentrack.report.plotting import COLORS, Target

__all__ = ["plot_intensity", "plot_schedule"]


# --------------------------------------------------------------------------------------------
# Carbon intensity
# --------------------------------------------------------------------------------------------


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

    start, values, step, label = plotting.series_arrays(series)
    if isinstance(provenance, Mapping):
        label = " ".join(
            str(provenance[k]) for k in ("name", "zone", "kind", "period") if provenance.get(k)
        )
    elif provenance:
        label = str(provenance)
    edges = np.append(start, start[-1] + step)
    lo = min(edges[0], run_start_s if run_start_s is not None else edges[0])
    hi = max(edges[-1], run_end_s if run_end_s is not None else edges[-1])
    with plotting.figure() as fig:
        ax = fig.subplots()
        ax.stairs(
            values,
            plotting.dates(edges),
            color=COLORS[0],
            linewidth=1.4,
            label="grid intensity (step series)",
            baseline=None,
        )
        if run_start_s is not None and run_end_s is not None:
            d0, d1 = plotting.dates([run_start_s, max(run_end_s, run_start_s + 1e-3)])
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
        ax.set_xlim(*plotting.dates([lo, hi]))
        ymax = max(
            [float(np.nanmax(values))]
            + [v for v in (time_weighted_g_per_kwh, annual_g_per_kwh) if v]
        )
        ax.set_ylim(0, ymax * 1.15 if ymax > 0 else 1.0)
        plotting.date_axis(ax)
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("carbon intensity (g CO$_2$e/kWh)")
        ax.set_title(title or ("Carbon intensity: " + label if label else "Carbon intensity"))
        plotting.legend(fig, ax)
        return plotting.save(fig, target, fmt)


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
        plan: a :class:`~greentrack.scheduling.plan.Plan` or its ``to_dict()`` (``segments_s`` or
            ``segments``, ``submitted``, ``deadline``, ``duration_s``, ``strategy``,
            ``saving_pct``; all optional but the segments).
    """
    import numpy as np

    d = plan.to_dict() if hasattr(plan, "to_dict") else dict(plan)
    segs = _plan_segments(d)
    if not segs:
        raise ConfigError("the plan has no segments; pass the JSON of `greentrack schedule`")
    start, values, step, label = plotting.series_arrays(series)
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
    with plotting.figure() as fig:
        ax = fig.subplots()
        idx = np.flatnonzero(keep)
        if idx.size:
            e = edges[idx[0] : idx[-1] + 2]
            ax.stairs(
                values[idx[0] : idx[-1] + 1],
                plotting.dates(e),
                color=COLORS[0],
                linewidth=1.4,
                label="intensity (g CO$_2$e/kWh)",
                baseline=None,
            )
        strategy = str(d.get("strategy") or "plan").replace("_", " ")
        for k, (a, b) in enumerate(segs):
            da, db = plotting.dates([a, b])
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
            da, db = plotting.dates([submitted, submitted + float(d["duration_s"])])
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
            ax.axvline(
                plotting.dates([submitted])[0], color=COLORS[2], linestyle="-.", label="submitted"
            )
        if deadline is not None:
            ax.axvline(
                plotting.dates([deadline])[0],
                color=COLORS[4],
                linestyle=":",
                linewidth=1.6,
                label="deadline",
            )
        ax.set_xlim(*plotting.dates([lo, hi]))
        ax.set_ylim(bottom=0)
        plotting.date_axis(ax)
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
        plotting.legend(fig, ax)
        return plotting.save(fig, target, fmt)
