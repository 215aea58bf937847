"""Figures of one run over time: power per device and cumulative energy, phases hatched.

Long series are drawn as a min–max envelope with the time-weighted mean per time bucket (see
:func:`greentrack.report.data.envelope`) — never more points than the figure has pixels — and
the axis label says so. Style and saving: :mod:`greentrack.report.plotting`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greentrack.errors import ConfigError
from greentrack.report import plotting
from greentrack.report.data import envelope, iso_to_s
from greentrack.report.plotting import COLORS, DEFAULT_BUCKETS, HATCHES, LINESTYLES, Target
from greentrack.store.reads import DeviceSeries

__all__ = ["as_device_series", "plot_energy", "plot_power", "shade_phases", "top_phases"]


def as_device_series(samples: Any) -> list[DeviceSeries]:
    """:class:`DeviceSeries` from a list of them or from the dict of arrays of
    :func:`greentrack.store.queries.run_samples`."""
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


def shade_phases(
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
    scale, unit = plotting.time_unit(span)
    reduced_note = ""
    with plotting.figure() as fig:
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
        handles = shade_phases(ax, top_phases(phases), t0, scale)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.1)  # headroom for the phase strip
        ax.set_xlabel(f"time since start ({unit})" + reduced_note)
        ax.set_ylabel("power (W)")
        ax.set_title(title or "Power per device")
        plotting.legend(fig, ax, handles)
        return plotting.save(fig, target, fmt)


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

    The node's own figure (its BMC, ``node:bmc``) is drawn as its own line, beside the
    components' total, never in it. Cumulative energy is monotone, so long series are drawn
    from ``max_points`` evenly spaced points (every bucket's last value kept), which is exact
    at the drawn points.
    """
    import numpy as np

    series = [s for s in as_device_series(samples) if s.t_s.size]
    if not series:
        raise ConfigError("the run has no samples to plot; was it tracked with a meter?")
    t0 = start_s if start_s is not None else min(float(s.t_s[0]) for s in series)
    t_end = max(float(s.t_s[-1]) for s in series)
    span = t_end - t0
    scale, unit = plotting.time_unit(span)
    from greentrack.meters.nodepower import is_node

    total_j = max(
        sum(float(s.energy_j[-1]) for s in series if not is_node(s.device)),
        max(float(s.energy_j[-1]) for s in series),
    )
    e_scale, e_unit = (
        (3.6e6, "kWh") if total_j >= 3.6e5 else ((1e3, "kJ") if total_j >= 1e3 else (1.0, "J"))
    )
    note = ""
    with plotting.figure() as fig:
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
            if not is_node(s.device):
                total += np.interp(grid, s.t_s, s.energy_j, left=0.0)
        if sum(not is_node(s.device) for s in series) > 1:
            ax.plot(
                (grid - t0) / scale,
                total / e_scale,
                label="total of the components",
                color=COLORS[0],
                linestyle="-",
                linewidth=2.0,
            )
        handles = shade_phases(ax, top_phases(phases), t0, scale)
        ax.set_xlim(0, max(span / scale, 1e-9))
        ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
        ax.set_xlabel(f"time since start ({unit})" + note)
        ax.set_ylabel(f"energy since start ({e_unit}, device)")
        ax.set_title(title or "Cumulative energy")
        plotting.legend(fig, ax, handles)
        return plotting.save(fig, target, fmt)
