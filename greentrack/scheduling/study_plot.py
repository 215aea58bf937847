"""The study's bar chart: mean and aggregate reductions per zone, duration and strategy.

Four bars per job (Flexible Start and Pause & Resume, mean and aggregate), one panel per series;
gray levels and hatches keep them apart in grayscale and for colour-blind readers. matplotlib is
imported only when a figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from greentrack.scheduling.study import StudyResult, data_label
from greentrack.scheduling.times import format_duration

__all__ = ["save_study_plot", "study_figure"]


#: (label, face colour, hatch) of the four bars of each job: gray levels 85 %, 55 %, 70 %, 30 %
#: and a hatch per strategy, so the bars stay apart in grayscale and for colour-blind readers.
_STUDY_BARS = (
    ("Flexible Start, mean", "#cfe8cf", ""),
    ("Flexible Start, aggregate", "#2e8b57", ""),
    ("Pause & Resume, mean", "#b9d7ee", "//"),
    ("Pause & Resume, aggregate", "#2f5d87", "//"),
)


def study_figure(results: Sequence[StudyResult]) -> Any:
    """The study's bar chart as a matplotlib ``Figure`` (not drawn, not saved): mean and
    aggregate reductions per zone, duration and strategy, one panel per series, the legend
    below the panels (never over a bar), the title wrapped to the figure's width."""
    import textwrap

    from matplotlib.figure import Figure

    n = max(1, len(results))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    width_in = max(6.4, 4.4 * cols)
    fig = Figure(figsize=(width_in, 3.4 * rows + 1.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    flat = list(axes.ravel())
    for ax in flat[len(results) :]:
        ax.set_visible(False)
    top = 0.0
    for ax, res in zip(flat, results, strict=False):
        labels: list[str] = []
        values: list[list[float]] = [[], [], [], []]
        keys = sorted({(r.duration_h, r.within_h) for r in res.rows})
        for d, w in keys:
            labels.append(f"{format_duration(d * 3600)}\n+{format_duration(w * 3600)}")
            by = {r.strategy: r for r in res.rows if (r.duration_h, r.within_h) == (d, w)}
            fs, pr = by.get("flexible_start"), by.get("pause_resume")
            values[0].append(fs.mean_reduction_pct if fs else np.nan)
            values[1].append(fs.aggregate_reduction_pct if fs else np.nan)
            values[2].append(pr.mean_reduction_pct if pr else np.nan)
            values[3].append(pr.aggregate_reduction_pct if pr else np.nan)
        x = np.arange(len(labels))
        wd = 0.2
        for k, ((label, color, hatch), ys) in enumerate(zip(_STUDY_BARS, values, strict=True)):
            ax.bar(
                x + (k - 1.5) * wd,
                ys,
                wd,
                label=label,
                color=color,
                hatch=hatch,
                edgecolor="#222222",
                linewidth=0.6,
            )
            finite = [v for v in ys if np.isfinite(v)]
            top = max(top, *finite) if finite else top
        ax.set_xticks(x, labels)
        ax.set_title(
            "\n".join(textwrap.wrap(f"{res.provenance.zone} ({data_label(res.provenance)})", 48)),
            fontsize=9,
        )
        ax.grid(axis="y", alpha=0.3)
    flat[0].set_ylim(top=max(top, 1.0) * 1.08)  # shared: a little room above the tallest bar
    for row in axes:
        row[0].set_ylabel("reduction vs run now (%)")
    handles, names = flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    title = (
        "Carbon-aware scheduling, one submission per step of the data",
        "(mean = mean per job; aggregate = 1 − ΣE/ΣE₀)",
    )
    lines = [ln for part in title for ln in textwrap.wrap(part, int(width_in * 11))]
    fig.suptitle("\n".join(lines), fontsize=9)
    return fig


def save_study_plot(results: Sequence[StudyResult], path: str | Path) -> Path:
    """Save :func:`study_figure` (PNG, SVG or PDF by the suffix of ``path``); returns the path."""
    out = Path(path)
    study_figure(results).savefig(out, dpi=120)
    return out
