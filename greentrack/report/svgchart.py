"""Small, fast SVG line charts for the static dashboard (no matplotlib: ~1 ms a chart).

The dashboard draws three charts for each of many runs; matplotlib takes ~0.2 s a figure, which
would make a site of a big store slow to build. These charts are plain SVG text: polylines
(already reduced to at most a few thousand points by the caller), nice ticks, hatched phase
bands from ``<pattern>`` definitions, and a legend. Series differ by dash pattern as well as
colour, so they stay apart in grayscale print.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

__all__ = ["Band", "Line", "line_chart", "nice_ticks", "time_ticks"]

COLORS = ("#000000", "#E69F00", "#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")
DASHES = ("", "6 3", "8 3 2 3", "2 2", "10 2 2 2 2 2", "1 3", "12 4")
HATCH_PATHS = ("M0,8 L8,0", "M0,0 L8,8", "M0,4 L8,4", "M4,0 L4,8", "M0,8 L8,0 M0,0 L8,8")


@dataclass
class Line:
    """A series: ``x``/``y`` arrays (same length); ``low``/``high`` an optional envelope band."""

    label: str
    x: Any
    y: Any
    low: Any = None
    high: Any = None
    step: str = ""  # "pre": y[k] holds over (x[k-1], x[k]]; "post": over [x[k], x[k+1]); "": lines


@dataclass
class Band:
    """A hatched span ``[x0, x1]`` (e.g. a phase); ``kind`` picks the hatch, one per label."""

    x0: float
    x1: float
    label: str
    kind: int = 0


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def time_ticks(lo_s: float, hi_s: float, count: int = 6) -> list[tuple[float, str]]:
    """Round UTC clock ticks (every 1, 2, 5, 10, 15, 30 s, 1, 5, 10, 15, 30 min, 1, 2, 3, 6, 12 h
    or days) for an epoch-seconds axis, labelled ``HH:MM`` (``HH:MM:SS`` below a minute's step,
    ``MM-DD HH:MM`` over two days or more). An axis too short for two round ticks gets its two
    ends labelled, so a chart never has an unlabelled time axis."""
    from datetime import UTC, datetime

    span = max(hi_s - lo_s, 1e-3)
    steps = (1, 2, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
    steps += (86400, 172800, 604800)
    step = next((s for s in steps if span / s <= count), steps[-1])
    fmt = "%H:%M:%S" if step < 60 else ("%H:%M" if span < 2 * 86400 else "%m-%d %H:%M")

    def label(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime(fmt)

    out = []
    t = math.ceil(lo_s / step) * step
    while t <= hi_s:
        out.append((float(t), label(t)))
        t += step
    if len(out) < 2:
        if span < 2.0:
            fmt = "%H:%M:%S.%f"
            return [(lo_s, label(lo_s)[:-3]), (hi_s, label(hi_s)[:-3])]
        return [(lo_s, label(lo_s)), (hi_s, label(hi_s))]
    return out


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.1e}"
    return f"{v:.6g}"


def _points(xs: Any, ys: Any, sx: Any, sy: Any, step: str) -> list[list[tuple[float, float]]]:
    """Screen points of a series, split at NaNs, with the corners of a step line if asked."""
    pts: list[tuple[float, float] | None] = []
    prev: tuple[float, float] | None = None
    for x, y in zip(xs, ys, strict=True):
        if y != y:  # NaN: break the line
            pts.append(None)
            prev = None
            continue
        px, py = sx(x), sy(y)
        if prev is not None and step == "post":
            pts.append((px, prev[1]))
        elif prev is not None and step == "pre":
            pts.append((prev[0], py))
        pts.append((px, py))
        prev = (px, py)
    out, cur = [], []
    for p in pts:
        if p is None:
            if len(cur) > 1:
                out.append(cur)
            cur = []
        else:
            cur.append(p)
    if len(cur) > 1:
        out.append(cur)
    return out


def line_chart(
    lines: Sequence[Line],
    *,
    title: str,
    x_label: str,
    y_label: str,
    bands: Sequence[Band] = (),
    width: int = 640,
    height: int = 260,
    y_min: float | None = 0.0,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    uid: str = "c",
    note: str = "",
) -> str:
    """An SVG line chart (a string, ``<svg ...>...</svg>``) with axes, ticks, bands and legend.

    ``uid`` keeps the pattern ids of several charts on one page apart. ``x_ticks`` overrides the
    x ticks (value, label), e.g. for times of day.
    """
    left, right, top = 56, 12, 26
    legend_rows = math.ceil((len(lines) + len({b.label for b in bands})) / 4)
    bottom = 40 + 16 * legend_rows + (14 if note else 0)
    pw, ph = width - left - right, height - top - bottom
    xs_all = [float(v) for ln in lines for v in ln.x]
    ys_all = [
        float(v)
        for ln in lines
        for arr in (ln.y, ln.high, ln.low)
        if arr is not None
        for v in arr
        if v == v
    ]
    xs_all += [b.x0 for b in bands] + [b.x1 for b in bands]
    x0, x1 = (min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1.0
    y0 = min(ys_all) if ys_all else 0.0
    y1 = max(ys_all) if ys_all else 1.0
    if y_min is not None:
        y0 = min(y_min, y0)
    if y1 <= y0:
        y1 = y0 + 1.0
    y1 += (y1 - y0) * 0.08

    def sx(v: float) -> float:
        return round(left + (float(v) - x0) / (x1 - x0) * pw, 1)

    def sy(v: float) -> float:
        return round(top + ph - (float(v) - y0) / (y1 - y0) * ph, 1)

    o = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart" font-family="sans-serif" '
        'font-size="10">'
    ]
    o.append(
        "<defs>"
        + "".join(
            f'<pattern id="{uid}-h{k}" width="8" height="8" patternUnits="userSpaceOnUse">'
            f'<path d="{p}" stroke="#555" stroke-width="0.8"/></pattern>'
            for k, p in enumerate(HATCH_PATHS)
        )
        + "</defs>"
    )
    o.append(
        f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="12" '
        f'font-weight="600">{escape(title)}</text>'
    )
    for b in bands:  # a hatched strip on top, and a faint full-height boundary
        bx0, bx1 = sx(max(b.x0, x0)), sx(min(b.x1, x1))
        o.append(
            f'<rect x="{bx0}" y="{top}" width="{max(bx1 - bx0, 0.5)}" height="12" '
            f'fill="url(#{uid}-h{b.kind % len(HATCH_PATHS)})" stroke="#555" '
            'stroke-width="0.4"/>'
        )
        o.append(
            f'<line x1="{bx0}" y1="{top}" x2="{bx0}" y2="{top + ph}" stroke="#aaa" '
            'stroke-width="0.5" stroke-dasharray="2 2"/>'
        )
    for t in nice_ticks(y0, y1):
        y = sy(t)
        o.append(
            f'<line x1="{left}" y1="{y}" x2="{left + pw}" y2="{y}" stroke="#e3e3e3"/>'
            f'<text x="{left - 4}" y="{y + 3}" text-anchor="end">{_fmt_tick(t)}</text>'
        )
    ticks = x_ticks if x_ticks is not None else [(t, _fmt_tick(t)) for t in nice_ticks(x0, x1, 6)]
    for t, label in ticks:
        if x0 <= t <= x1:
            x = sx(t)
            o.append(
                f'<line x1="{x}" y1="{top + ph}" x2="{x}" y2="{top + ph + 4}" '
                f'stroke="#333"/><text x="{x}" y="{top + ph + 15}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    o.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
        'stroke="#333" stroke-width="0.8"/>'
    )
    for i, ln in enumerate(lines):
        color, dash = COLORS[i % len(COLORS)], DASHES[i % len(DASHES)]
        if ln.low is not None and ln.high is not None:
            pairs = [
                (x, lo, hi)
                for x, lo, hi in zip(ln.x, ln.low, ln.high, strict=True)
                if lo == lo and hi == hi
            ]
            if pairs:
                top_pts = " ".join(f"{sx(x)},{sy(hi)}" for x, _, hi in pairs)
                bot_pts = " ".join(f"{sx(x)},{sy(lo)}" for x, lo, _ in reversed(pairs))
                o.append(
                    f'<polygon points="{top_pts} {bot_pts}" fill="{color}" '
                    'fill-opacity="0.18" stroke="none"/>'
                )
        for seg in _points(ln.x, ln.y, sx, sy, ln.step):
            pts = " ".join(f"{x},{y}" for x, y in seg)
            o.append(
                f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.4"'
                + (f' stroke-dasharray="{dash}"' if dash else "")
                + "/>"
            )
    o.append(
        f'<text x="{left + pw / 2}" y="{top + ph + 29}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    o.append(
        f'<text transform="translate(13,{top + ph / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    entries: list[tuple[str, str]] = []
    for i, ln in enumerate(lines):
        color, dash = COLORS[i % len(COLORS)], DASHES[i % len(DASHES)]
        entries.append(
            (
                ln.label,
                f'<line x1="0" y1="-3" x2="22" y2="-3" stroke="{color}" '
                f'stroke-width="1.6"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>",
            )
        )
    seen: set[str] = set()
    for b in bands:
        if b.label not in seen:
            seen.add(b.label)
            entries.append(
                (
                    b.label,
                    f'<rect x="0" y="-9" width="22" height="10" '
                    f'fill="url(#{uid}-h{b.kind % len(HATCH_PATHS)})" stroke="#555" '
                    'stroke-width="0.4"/>',
                )
            )
    col_w = pw / 4
    for k, (label, glyph) in enumerate(entries):
        lx = left + (k % 4) * col_w
        ly = top + ph + 46 + 16 * (k // 4)
        o.append(
            f'<g transform="translate({round(lx, 1)},{ly})">{glyph}'
            f'<text x="27" y="0">{escape(label[:28])}</text></g>'
        )
    if note:
        o.append(
            f'<text x="{left}" y="{height - 4}" fill="#555" font-size="9">{escape(note)}</text>'
        )
    o.append("</svg>")
    return "".join(o)
