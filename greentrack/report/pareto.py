"""Accuracy versus energy across runs: the one Pareto implementation of greentrack.

:func:`pareto_front` finds the runs no other run beats on both energy (lower) and the metric;
:func:`plot_pareto` draws the metric against facility energy (log x axis) with that front
dashed; :func:`pareto_points` and :func:`pick_metric` make its points from run objects (what
``greentrack plot --kind pareto`` and the HTML report draw). :func:`pareto_panels` draws one
panel per group side by side, every point labelled (``greentrack bench --plot``); both place
their labels with :func:`place_labels`, inside the panel and clear of each other. Style and
saving: :mod:`greentrack.report.plotting`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greentrack.errors import ConfigError
from greentrack.report import plotting
from greentrack.report.model import is_final
from greentrack.report.plotting import COLORS, Target

__all__ = [
    "Panel",
    "pareto_front",
    "pareto_panels",
    "pareto_points",
    "pick_metric",
    "place_labels",
    "plot_pareto",
]


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.ticker import FuncFormatter

    xy = [(float(p["energy_kwh"]), float(p["value"])) for p in pts]
    front = pareto_front(xy, higher_is_better)
    with plotting.figure() as fig:
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
        ax.set_xlabel("facility energy per run (kWh, log scale)")
        ax.set_ylabel(metric + ("" if higher_is_better else " (lower is better)"))
        ax.set_title(title or f"{metric} versus energy ({len(pts)} runs)")
        plotting.legend(fig, ax)
        FigureCanvasAgg(fig)  # a renderer to measure the labels with (any format saves)
        fig.canvas.draw()  # the layout, then pixel positions to keep the labels apart
        fig.set_layout_engine("none")  # keep the axes where the labels were measured
        labels = [(str(pts[i].get("label", ""))[:24], *xy[i]) for i in front]
        place_labels(fig, ax, labels, fontsize=6.5, max_labels=max_labels, drop_hidden=True)
        return plotting.save(fig, target, fmt)


# --------------------------------------------------------------------------------------------
# Labels kept apart and inside their panel
# --------------------------------------------------------------------------------------------

#: Where a point's label may go, tried in order: (dx, dy) in points, horizontal and vertical
#: alignment. The first that stays inside the panel and clear of every other label wins.
_LABEL_SPOTS = (
    (5, 4, "left", "bottom"),
    (5, -4, "left", "top"),
    (-5, 4, "right", "bottom"),
    (-5, -4, "right", "top"),
    (0, 8, "center", "bottom"),
    (0, -8, "center", "top"),
    (5, 16, "left", "bottom"),
    (-5, 16, "right", "bottom"),
    (5, -16, "left", "top"),
    (-5, -16, "right", "top"),
    (0, 26, "center", "bottom"),
    (0, -26, "center", "top"),
)


def _overlap_px(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _outside_px(box: Any, frame: Any) -> float:
    return (
        max(0.0, frame.x0 - box.x0)
        + max(0.0, box.x1 - frame.x1)
        + max(0.0, frame.y0 - box.y0)
        + max(0.0, box.y1 - frame.y1)
    )


def place_labels(
    fig: Any,
    ax: Any,
    items: Sequence[tuple[str, float, float]],
    *,
    fontsize: float = 8,
    max_labels: int | None = None,
    drop_hidden: bool = False,
) -> int:
    """Annotate each (text, x, y), left to right, at the first of :data:`_LABEL_SPOTS` inside
    ``ax`` that hides no other label, measured with the figure's renderer (draw the figure and
    freeze its layout first). Where every spot overlaps or leaves the panel: the spot with the
    least overlap, or no label at all with ``drop_hidden``. Places at most ``max_labels``;
    returns how many it placed."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = []
    for text, x, y in sorted(items, key=lambda it: (it[1], it[2])):
        if max_labels is not None and len(placed) >= max_labels:
            break
        best: tuple[float, Any] | None = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            ann = ax.annotate(
                text, (x, y), textcoords="offset points", xytext=(dx, dy),
                ha=ha, va=va, fontsize=fontsize, annotation_clip=False,
            )  # fmt: skip
            ann.set_in_layout(False)  # placed inside the panel: the layout need not move for it
            box = ann.get_window_extent(renderer)
            cost = 1e6 * _outside_px(box, frame) + sum(_overlap_px(box, b) for b in placed)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann)
            else:
                ann.remove()
            if cost == 0:
                break
        assert best is not None
        if drop_hidden and best[0] > 0:
            best[1].remove()  # no spot is clear: better no label than one over another
            continue
        placed.append(best[1].get_window_extent(renderer))
    return len(placed)


# --------------------------------------------------------------------------------------------
# One panel per group, every point labelled
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """One panel of :func:`pareto_panels`.

    Attributes:
        title: the panel's title (e.g. the task).
        xlabel: the x axis, with the energy's unit and how it was obtained.
        points: ``(label, energy, metric)`` per point; lower energy and higher metric are better.
        ylabel: the metric's name.
    """

    title: str
    xlabel: str
    points: Sequence[tuple[str, float, float]]
    ylabel: str = "accuracy"


def pareto_panels(panels: Sequence[Panel]) -> Any:
    """The metric against energy, one panel per :class:`Panel` side by side, as a matplotlib
    ``Figure``: the Pareto front in green, every point labelled (kept apart and inside its
    panel), a log x axis only where the energies span more than a factor 5 (else a linear one,
    few ticks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    fig = Figure(figsize=(4.8 * len(panels), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    for ax, panel in zip(axes, panels, strict=True):
        pts = [(c, a) for _, c, a in panel.points]
        front = set(pareto_front(pts))
        for i, (c, a) in enumerate(pts):
            on = i in front
            ax.scatter(
                [c], [a], marker="o" if on else "s", zorder=3,
                color="tab:green" if on else "white", edgecolors="tab:green" if on else "0.35",
            )  # fmt: skip
        fp = sorted(pts[i] for i in front)
        if len(fp) > 1:
            ax.plot([p[0] for p in fp], [p[1] for p in fp], color="tab:green", lw=1)
        energies = [c for c, _ in pts if c > 0]
        if energies and max(energies) / min(energies) > 5:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.xaxis.set_major_formatter(plain)
        ax.margins(x=0.2, y=0.18)
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
    fig.canvas.draw()  # the layout, then pixel positions to keep the labels apart
    fig.set_layout_engine("none")  # keep the panels where the labels were measured
    for ax, panel in zip(axes, panels, strict=True):
        place_labels(fig, ax, panel.points)
    return fig


# --------------------------------------------------------------------------------------------
# Points from run objects
# --------------------------------------------------------------------------------------------


def pick_metric(runs: Sequence[Mapping[str, Any]], metric: str | None = None) -> str | None:
    """The metric for accuracy-vs-energy: ``metric``, else ``accuracy``/``acc``-like, else any
    metric that is not a loss, else None."""
    keys = sorted({k for r in runs for k in (r.get("metrics") or {})})
    if metric:
        return metric
    for k in keys:
        if "acc" in k.lower():
            return k
    rest = [k for k in keys if "loss" not in k.lower() and "error" not in k.lower()]
    return rest[0] if rest else (keys[0] if keys else None)


def pareto_points(runs: Sequence[Mapping[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Plot points of accuracy-vs-energy: facility kWh, the metric, a label, final or not."""
    return [
        {
            "energy_kwh": r.get("facility_energy_kwh"),
            "value": (r.get("metrics") or {}).get(metric),
            "label": f"{r['name']} {r['id'][:6]}",
            "final": (r.get("pricetag") or {}).get("final", is_final(r)),
        }
        for r in runs
    ]
