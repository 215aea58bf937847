"""Checks of a matplotlib figure as people see it: no text off the canvas, no two texts on top of
each other, no legend over the data. Uses the figure's own renderer and window extents (pixels).

    from figcheck import figure_problems
    assert figure_problems(fig) == []
"""

from __future__ import annotations

from typing import Any


def _texts(fig: Any) -> list[Any]:
    from matplotlib.text import Text

    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        ax = getattr(t, "axes", None)
        if ax is not None and not ax.get_visible():
            continue
        out.append(t)
    return out


def _name(t: Any) -> str:
    return repr(t.get_text()[:40])


def figure_problems(fig: Any, *, tolerance_px: float = 1.0, check_legend: bool = True) -> list[str]:
    """Every text of ``fig`` that leaves the canvas or overlaps another text, and every legend
    that covers a bar, line point or marker of its axes. Empty when the figure is clean.

    Tick labels are checked as drawn (a tick label outside the axis' view is not drawn and not
    checked). Overlap means the window extents intersect by more than ``tolerance_px`` in both
    directions.
    """
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure(): give it an Agg canvas
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    problems: list[str] = []
    boxes = []
    undrawn: set[Any] = set()  # tick labels the axis does not draw are still Text objects
    for ax in fig.axes:
        if ax.get_visible():
            undrawn |= _undrawn_ticklabels(ax, renderer)
        else:  # a hidden panel draws none of its texts
            from matplotlib.text import Text

            undrawn |= set(ax.findobj(Text))
    for t in _texts(fig):
        if t in undrawn:
            continue
        bb = t.get_window_extent(renderer)
        if bb.width <= 0 or bb.height <= 0:
            continue
        if (
            bb.x0 < canvas.x0 - tolerance_px
            or bb.y0 < canvas.y0 - tolerance_px
            or bb.x1 > canvas.x1 + tolerance_px
            or bb.y1 > canvas.y1 + tolerance_px
        ):
            problems.append(f"text {_name(t)} leaves the canvas: {bb.bounds} vs {canvas.bounds}")
        boxes.append((t, bb))
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if w > tolerance_px and h > tolerance_px:
                problems.append(f"texts {_name(a)} and {_name(b)} overlap ({w:.0f}×{h:.0f} px)")
    if check_legend:
        problems += _legend_problems(fig, renderer, tolerance_px)
    return problems


def _undrawn_ticklabels(ax: Any, renderer: Any) -> set[Any]:
    """Tick labels matplotlib does not draw: ticks outside the view, and stale tick objects beyond
    the current locations (``Axis._update_ticks`` is what ``Axis.draw`` itself calls)."""
    hidden = set()
    for axis in (ax.xaxis, ax.yaxis):
        drawn = {id(t) for t in axis._update_ticks()}
        for tick in [*axis.majorTicks, *axis.minorTicks]:
            if id(tick) not in drawn:
                hidden.update((tick.label1, tick.label2))
    return hidden


def _legend_problems(fig: Any, renderer: Any, tolerance_px: float) -> list[str]:
    import numpy as np
    from matplotlib.patches import Rectangle

    out = []
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None or not ax.get_visible():
            continue
        lb = leg.get_window_extent(renderer)
        for p in ax.patches:
            if not isinstance(p, Rectangle) or not p.get_visible():
                continue
            bb = p.get_window_extent(renderer)
            if bb.width <= 0 or bb.height <= 0 or not np.all(np.isfinite(bb.bounds)):
                continue
            w = min(lb.x1, bb.x1) - max(lb.x0, bb.x0)
            h = min(lb.y1, bb.y1) - max(lb.y0, bb.y0)
            if w > tolerance_px and h > tolerance_px:
                out.append(f"the legend of {ax.get_title()!r} covers a bar at {bb.bounds}")
                break
        for line in ax.lines:
            xy = ax.transData.transform(np.column_stack(line.get_data()).astype(float))
            inside = (
                (xy[:, 0] > lb.x0) & (xy[:, 0] < lb.x1) & (xy[:, 1] > lb.y0) & (xy[:, 1] < lb.y1)
            )
            if inside.any():
                what = f"{ax.get_title()!r} covers a point of {line.get_label()!r}"
                out.append(f"the legend of {what}")
                break
    return out


def hatched_or_distinct(patches: list[Any]) -> bool:
    """True when bars of different series can be told apart in grayscale: each series has its own
    (hatch, gray level rounded to 10 %) pair."""
    keys = set()
    for p in patches:
        r, g, b, _ = p.get_facecolor()
        gray = round(0.299 * r + 0.587 * g + 0.114 * b, 1)
        keys.add((p.get_hatch() or "", gray))
    return len(keys) == len(patches)
