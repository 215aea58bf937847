"""What every report figure shares: the print-safe style, the figure, saving, inline SVG.

Every function takes plain data (arrays, run objects, dicts) and a target — a path whose suffix
picks the format (``.svg``, ``.png``, ``.pdf``) or a binary file object with ``fmt=`` — and
returns the target. matplotlib is imported inside the functions, so importing this module is
cheap. One module per figure kind: :mod:`greentrack.report.runplots` (power and energy of a
run), :mod:`greentrack.report.gridplots` (carbon intensity, a schedule plan) and
:mod:`greentrack.report.pareto` (a metric versus energy across runs).

Print-safe by construction: every series differs by line style (and marker) as well as colour
(Okabe–Ito palette), phases and plan segments are told apart by hatch patterns, and layouts are
``constrained`` with legends outside the axes, so labels do not overlap.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from greentrack.errors import ConfigError

__all__ = [
    "COLORS",
    "DEFAULT_BUCKETS",
    "HATCHES",
    "LINESTYLES",
    "MARKERS",
    "Target",
    "date_axis",
    "dates",
    "figure",
    "legend",
    "save",
    "series_arrays",
    "svg_text",
    "time_unit",
]

Target = str | Path | IO[bytes]
"""Where a figure goes: a path (its suffix picks svg/png/pdf) or a binary file object."""

#: Okabe–Ito colours (colour-blind safe), paired with distinct line styles and markers.
COLORS = ("#000000", "#E69F00", "#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)), (0, (8, 2)), "-")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
HATCHES = ("//", "\\\\", "..", "xx", "oo", "--", "++", "**")
DEFAULT_BUCKETS = 800
"""Time buckets of a power plot: about the axes' width in pixels at 150 dpi."""
FIGSIZE = (6.4, 3.4)


@contextlib.contextmanager
def figure(figsize: tuple[float, float] = FIGSIZE) -> Iterator[Any]:
    """A constrained-layout matplotlib ``Figure`` (Agg) in the report style."""
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


def save(fig: Any, target: Target, fmt: str | None) -> Target:
    """Write ``fig`` to ``target`` (a path whose suffix picks svg/png/pdf, or a binary file
    object with ``fmt``), without a timestamp, and return ``target``."""
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


def legend(fig: Any, ax: Any, extra: Sequence[Any] = ()) -> None:
    """The axes' legend (plus ``extra`` handles) below the axes, in as many columns as fit."""
    handles, labels = ax.get_legend_handles_labels()
    handles += list(extra)
    labels += [h.get_label() for h in extra]
    if handles:
        width = sum(len(str(label)) + 6 for label in labels)
        ncols = min(4, len(handles)) if width <= 90 else max(1, min(len(handles), 2))
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols)


def time_unit(span_s: float) -> tuple[float, str]:
    """(seconds per unit, unit) of a time axis spanning ``span_s``: s, min or h."""
    if span_s > 2 * 3600:
        return 3600.0, "h"
    if span_s > 120:
        return 60.0, "min"
    return 1.0, "s"


def series_arrays(series: Any) -> tuple[Any, Any, float, str]:
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


def dates(t_s: Any) -> Any:
    """Epoch seconds -> naive UTC datetimes (what matplotlib's date axis draws)."""
    import numpy as np

    return np.array([datetime.fromtimestamp(float(t), UTC).replace(tzinfo=None) for t in t_s])


def date_axis(ax: Any) -> None:
    """Concise date ticks (3 to 7) on the x axis."""
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
