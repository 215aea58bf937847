"""The study: every submission time of a history, each strategy against running immediately.

For a series and a job (duration ``D``, slack ``W``, constant power), every whole step of the
series at which the full window ``[t, t + D + W]`` fits in the data is a submission. Jobs start on
step boundaries. For each submission:

* ``E₀``: run at submission (one sliding-window sum from the cumulative integral);
* Flexible Start: the best step-boundary start in the window — a sliding minimum of the same
  window sums, O(n·W/step);
* Pause & Resume: the exact dynamic programme of
  :func:`greentrack.scheduling.pause_resume.pr_dp`, run for all submissions at once (vectorised
  over submissions, in cache-sized chunks); when no constraint binds (min run = one cell, no cap
  on pauses) it is the sum of the ``D/step`` cheapest steps of the window (``np.partition``),
  which is exact. Its bar chart is :mod:`greentrack.scheduling.study_plot`.

Reported per (duration, within, strategy): the **mean per-submission reduction**
``mean(1 - E/E₀)`` and the **aggregate reduction** ``1 - ΣE/ΣE₀`` (all jobs' emissions together),
in %. Submissions with ``E₀ = 0`` are left out of the mean. Power cancels out of both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.errors import ScheduleError
from greentrack.scheduling.pause_resume import DEFAULT_MIN_RUN_S, pr_dp, quantum_options
from greentrack.scheduling.sources import csv_layout, load_by_zone, load_plan_csv
from greentrack.scheduling.times import format_duration, parse_duration

_CHUNK_FLOATS = 100_000

__all__ = [
    "StudyResult",
    "StudyRow",
    "data_label",
    "format_study",
    "study",
    "study_files",
    "study_series",
]


@dataclass(frozen=True)
class StudyRow:
    """One strategy for one (duration, within) over every submission time of a series.

    ``mean_reduction_pct`` is the mean over submissions of ``100 · (1 - E / E₀)``;
    ``aggregate_reduction_pct`` is ``100 · (1 - ΣE / ΣE₀)`` (total emissions of all jobs), where
    ``E₀`` is running at submission time.
    """

    duration_h: float
    within_h: float
    strategy: str
    mean_reduction_pct: float
    aggregate_reduction_pct: float
    submissions: int
    zone: str = ""
    min_run_h: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_h": self.duration_h,
            "within_h": self.within_h,
            "strategy": self.strategy,
            "mean_reduction_pct": self.mean_reduction_pct,
            "aggregate_reduction_pct": self.aggregate_reduction_pct,
            "submissions": self.submissions,
            "zone": self.zone,
            "min_run_h": self.min_run_h,
        }


@dataclass(frozen=True)
class StudyResult:
    """Rows of a study plus the per-submission reductions (for plots)."""

    rows: tuple[StudyRow, ...]
    provenance: Provenance
    reductions_pct: Mapping[tuple[float, float, str], np.ndarray] = field(repr=False)

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]


def _sliding_min(x: np.ndarray, width: int, count: int) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(x, width)[:count].min(axis=1)


def study_series(
    series: IntensitySeries,
    durations_s: Sequence[float],
    within_s: float | Sequence[float],
    *,
    min_run_s: float | None = None,
    max_pauses: int | None = None,
    strategies: Sequence[str] = ("flexible_start", "pause_resume"),
) -> StudyResult:
    """Evaluate the strategies for every whole-step submission where the window fits the data.

    Jobs start on step boundaries; Flexible Start picks the best step-boundary start in the window
    (sliding minimum of cumulative-sum window costs), Pause & Resume runs the exact DP (cells of
    ``gcd(step, D, min_run)``) for all submissions at once. Constant power (it cancels out).
    """
    withins = (
        [float(within_s)] if isinstance(within_s, int | float) else [float(x) for x in within_s]
    )
    step = series.step_s
    s0 = float(series.start_s[0])
    n = len(series)
    m_s = DEFAULT_MIN_RUN_S if min_run_s is None else float(min_run_s)
    rows: list[StudyRow] = []
    red: dict[tuple[float, float, str], np.ndarray] = {}
    for d in durations_s:
        if not d > 0:
            raise ScheduleError(f"study durations must be positive (got {d} s)")
        starts = s0 + np.arange(n) * step
        f_all = series.integral(starts + d) - series.integral(starts)  # (g/kWh)·s per start
        for w in withins:
            if w < 0:
                raise ScheduleError(f"--within must not be negative (got {w} s)")
            count = math.floor((series.end_s - s0 - d - w) / step + 1e-9) + 1
            if count <= 0:
                raise ScheduleError(
                    f"the data ({format_duration(n * step)}) is shorter than one "
                    f"{format_duration(d)} job plus {format_duration(w)} of slack"
                )
            e0 = f_all[:count]
            k_max = math.floor(w / step + 1e-9)
            results: dict[str, np.ndarray] = {}
            if "flexible_start" in strategies:
                results["flexible_start"] = np.minimum(_sliding_min(f_all, k_max + 1, count), e0)
            if "pause_resume" in strategies:
                results["pause_resume"] = np.minimum(
                    _study_pr(series, d, w, m_s, max_pauses, count),
                    results.get("flexible_start", e0),
                )
            for name, e in results.items():
                valid = e0 > 0
                per = np.where(valid, 100.0 * (1.0 - e / np.where(valid, e0, 1.0)), np.nan)
                agg = 100.0 * (1.0 - e.sum() / e0.sum()) if e0.sum() > 0 else 0.0
                rows.append(
                    StudyRow(
                        duration_h=d / 3600.0,
                        within_h=w / 3600.0,
                        strategy=name,
                        mean_reduction_pct=float(np.nanmean(per)) if valid.any() else 0.0,
                        aggregate_reduction_pct=float(agg),
                        submissions=count,
                        zone=series.provenance.zone,
                        min_run_h=(min(m_s, d) / 3600.0) if name == "pause_resume" else None,
                    )
                )
                red[(d / 3600.0, w / 3600.0, name)] = per
    return StudyResult(tuple(rows), series.provenance, red)


def _study_pr(
    series: IntensitySeries,
    d: float,
    w: float,
    min_run_s: float,
    max_pauses: int | None,
    count: int,
) -> np.ndarray:
    """Pause & Resume cost ((g/kWh)·s at 1 W) for the first ``count`` submissions, vectorised."""
    from numpy.lib.stride_tricks import sliding_window_view

    m_eff = min(min_run_s, d)
    kd = 1 if max_pauses is None else max_pauses + 2
    q = None
    for cand, _ in quantum_options(series.step_s, d, m_eff, w):
        if cand > series.step_s:
            break  # the study keeps to the data's resolution
        if int(series.step_s) % int(cand) != 0:
            continue
        t_count = math.floor((d + w) / cand + 1e-9)
        n_work = math.ceil(d / cand - 1e-9)
        if count * t_count * (n_work + 1) * kd <= 200_000_000:
            q = cand
            break
    if q is None:
        q = series.step_s
    r = round(series.step_s / q)
    t_count = math.floor((d + w) / q + 1e-9)
    n_work = math.ceil(d / q - 1e-9)
    energy = np.diff(np.minimum(np.arange(n_work + 1) * q, d))  # seconds at 1 W: E in W·s units
    if t_count < n_work:
        return np.full(count, np.inf)
    m = min(n_work, max(1, math.ceil(m_eff / q - 1e-9)))
    cells = np.repeat(series.g_per_kwh, r)
    need = (count - 1) * r + t_count
    if need > cells.size:
        cells = np.concatenate((cells, np.full(need - cells.size, series.g_per_kwh[-1])))
    cell_c = sliding_window_view(cells, t_count)[: (count - 1) * r + 1 : r]
    kcap = None if max_pauses is None else max_pauses + 1
    if m == 1 and kcap is None and np.all(energy == energy[0]):
        # no constraint binds: the N cheapest cells of each window (exact, O(S·T))
        part = np.partition(cell_c, n_work - 1, axis=1)[:, :n_work]
        return part.sum(axis=1) * energy[0]
    out = np.empty(count)
    # DP states of ~CHUNK floats per array stay in cache: several times faster than one big batch
    chunk = max(64, _CHUNK_FLOATS // ((n_work + 1) * (1 if kcap is None else kcap + 1)))
    for i in range(0, count, chunk):
        best, _ = pr_dp(cell_c[i : i + chunk], energy, m, kcap)
        out[i : i + chunk] = best
    return out


def study(
    data: IntensitySeries | str | Path | Sequence[str | Path],
    durations: Sequence[float | str] | float | str,
    within: Sequence[float | str] | float | str,
    *,
    min_run: float | str | None = None,
    max_pauses: int | None = None,
) -> StudyResult:
    """The study over a series or CSV file(s): see :func:`study_series`.

    Example::

        r = study("ES_2022_hourly.csv", ["1h", "6h", "24h"], "24h")
        print(format_study([r]))
    """
    series = data if isinstance(data, IntensitySeries) else load_plan_csv(data)  # type: ignore[arg-type]
    ds = [durations] if isinstance(durations, int | float | str) else list(durations)
    ws = [within] if isinstance(within, int | float | str) else list(within)
    return study_series(
        series,
        [parse_duration(x) for x in ds],
        [parse_duration(x, "--within") for x in ws],
        min_run_s=None if min_run is None else parse_duration(min_run, "--min-run"),
        max_pauses=max_pauses,
    )


def study_files(
    paths: Sequence[str | Path],
    durations: Sequence[float | str] | float | str,
    within: Sequence[float | str] | float | str,
    *,
    min_run: float | str | None = None,
    max_pauses: int | None = None,
    csv_options: Mapping[str, Any] | None = None,
) -> list[StudyResult]:
    """The study on CSV files: one result per zone (files of one zone, e.g. years, are joined).

    ``csv_options`` are :func:`~greentrack.carbon.csvsource.load_csv`'s layout options
    (``time_column``, ``value_column``, ``tz``, ``signal``, ``max_gap_steps``).

    Example::

        rs = study_files(["ES_2022_hourly.csv", "NO_2022_hourly.csv"], ["1h", "6h", "24h"], "24h")
        print(format_study(rs))
    """
    if not paths:
        raise ScheduleError("the study needs data: pass --csv FILE (several allowed)")
    return [
        study(series, durations, within, min_run=min_run, max_pauses=max_pauses)
        for series in load_by_zone(paths, csv_options)
    ]


def data_label(prov: Provenance) -> str:
    """The data a study ran on: ``2022, Electricity Maps`` from a CSV provenance (years of the
    period, file layout)."""
    years = sorted({part[:4] for part in prov.period.split("/") if part[:4].isdigit()})
    span = "–".join([years[0], years[-1]] if len(years) > 1 else years)
    layout = csv_layout(prov)
    return ", ".join(x for x in (span, layout) if x) or prov.source


def format_study(results: Sequence[StudyResult], fmt: str = "markdown") -> str:
    """A markdown (or plain) table of study rows: mean per-submission and aggregate reductions."""
    header = [
        "zone",
        "data",
        "duration",
        "within",
        "strategy",
        "mean reduction per submission",
        "aggregate reduction (1 − ΣE/ΣE₀)",
        "submissions",
    ]
    body = []
    for res in results:
        for r in res.rows:
            body.append(
                [
                    r.zone or res.provenance.zone,
                    data_label(res.provenance),
                    format_duration(r.duration_h * 3600),
                    format_duration(r.within_h * 3600),
                    "Flexible Start"
                    if r.strategy == "flexible_start"
                    else (f"Pause & Resume (min run {format_duration((r.min_run_h or 0) * 3600)})"),
                    f"{r.mean_reduction_pct:.1f} %",
                    f"{r.aggregate_reduction_pct:.1f} %",
                    f"{r.submissions:,}",
                ]
            )
    if fmt == "markdown":
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(out)
    widths = [
        max(len(h), *(len(row[i]) for row in body)) if body else len(h)
        for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(wd) for h, wd in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)
