"""Where a plan's intensity comes from: CSV files (with their layout options), or a source.

Every CSV read goes through the carbon package's loader
(:func:`greentrack.carbon.csvsource.load_csv`) with the same layout options as ``greentrack
intensity`` (``time_column``, ``value_column``, ``tz``, ``signal``, ``max_gap_steps``); a region is
canonicalised by :func:`greentrack.carbon.regions.canonical_zone`. Live and static sources come
from the carbon registry (:func:`greentrack.carbon.registry.get_source`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from greentrack.carbon.provenance import Provenance
from greentrack.carbon.series import IntensitySeries
from greentrack.errors import ScheduleError
from greentrack.scheduling.times import format_duration
from greentrack.timefmt import format_time

__all__ = ["csv_layout", "load_by_zone", "load_plan_csv", "source_series"]


def load_plan_csv(
    csv: str | Path | Sequence[str | Path],
    zone: str | None = None,
    *,
    source: str | None = None,
    csv_options: Mapping[str, Any] | None = None,
) -> IntensitySeries:
    """The whole series in the CSV file(s), read with ``csv_options`` (the rows of ``zone`` when
    the files hold several zones). ``source`` other than ``csv`` beside CSV files is an error."""
    from greentrack.carbon.csvsource import load_csv

    if source and source.strip().lower() != "csv":
        raise ScheduleError(f"--csv was given with --source {source}; drop one of them")
    paths = [csv] if isinstance(csv, str | Path) else list(csv)
    if not paths:
        raise ScheduleError("no CSV file given; pass --csv FILE")
    options = dict(csv_options or {})
    if zone:
        from greentrack.carbon.regions import canonical_zone

        options["zone"] = canonical_zone(zone)
    return load_csv(paths, **options)


def source_series(
    region: str | None,
    source: str | None,
    csv: Any,
    at_s: float,
    deadline_s: float,
    config: Any,
    now_s: float,
    csv_options: Mapping[str, Any] | None = None,
) -> tuple[IntensitySeries, list[str]]:
    """Intensity for ``[at_s, deadline_s]``: CSV files, or a source's history or forecast.

    Windows that end in the past use the source's history (:meth:`series`); windows that end in
    the future need a forecast (:meth:`forecast`). A forecast that starts up to one step after the
    submission time has its first value stand in for the minutes before (with a warning). CSV
    files are read with ``csv_options`` (:func:`load_plan_csv`).
    """
    if csv:
        return load_plan_csv(csv, region, source=source, csv_options=csv_options), []
    from greentrack.carbon.regions import resolve_region
    from greentrack.carbon.registry import get_source
    from greentrack.config import load_config

    cfg = config or load_config()
    if not region and not cfg.region:
        raise ScheduleError(
            "no region: give --region (e.g. ES), set GREENTRACK_REGION, or plan on --csv FILE"
        )
    zone = resolve_region(region, cfg).zone
    src = get_source(source, cfg)
    if deadline_s <= now_s:
        series = src.series(zone, at_s, deadline_s)
        return series, src.pop_warnings()
    if at_s < now_s - 300.0:
        raise ScheduleError(
            "the window starts in the past but ends in the future; plan from now (drop --at) "
            "or entirely in the past against history"
        )
    series = src.forecast(zone, deadline_s - now_s)
    warnings = src.pop_warnings()
    first = float(series.start_s[0])
    if len(series) > 1 and at_s < first <= at_s + series.step_s:
        warnings.append(
            f"the forecast starts at {format_time(first)}; its first value stands in for the "
            f"{format_duration(first - at_s)} before"
        )
        series = IntensitySeries(
            np.concatenate(([first - series.step_s], series.start_s)),
            np.concatenate(([series.g_per_kwh[0]], series.g_per_kwh)),
            series.step_s,
            series.provenance,
        )
    return series, warnings


def csv_layout(prov: Provenance) -> str:
    """The file layout named in a CSV provenance (``Electricity Maps``, ``EIA-930``...)."""
    bits = prov.detail.split(";")
    return bits[1].split(" column")[0].replace(" export", "").strip() if len(bits) > 1 else ""


def load_by_zone(
    paths: Sequence[str | Path], csv_options: Mapping[str, Any] | None = None
) -> list[IntensitySeries]:
    """One series per (zone, file layout); files of one group (e.g. years) are joined in order.

    Files of the same zone from different data sets (Electricity Maps and EIA-930 for CAISO) stay
    separate studies instead of being averaged together.
    """
    from greentrack.carbon.csvsource import load_csv

    opts = dict(csv_options or {})
    groups: dict[tuple[str, str], list[Path]] = {}
    for p in paths:
        prov = load_csv(p, **opts).provenance
        groups.setdefault((prov.zone, csv_layout(prov)), []).append(Path(p))
    return [load_csv(group, **opts) for group in groups.values()]
