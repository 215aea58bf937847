"""pandas access to the store: one row per run, or one row per sample.

::

    import greentrack as gt
    df = gt.runs_frame(project="cifar")           # energy_kwh, co2e_g, methods, metric_*, param_*
    s = gt.samples_frame("3f2a")                  # t (UTC), device, component, energy_j, power_w

pandas is imported inside the functions (``import greentrack`` stays fast).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from greentrack.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RUN_COLUMNS", "runs_frame", "samples_frame"]

#: The fixed columns of :func:`runs_frame`, in order (metric_*, param_*, tag_* follow).
RUN_COLUMNS = (
    "id",
    "project",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "energy_j",
    "energy_kwh",
    "pue",
    "facility_energy_kwh",
    "energy_gpu_kwh",
    "energy_cpu_kwh",
    "energy_dram_kwh",
    "energy_ram_kwh",
    "node_energy_kwh",
    "methods",
    "region",
    "co2e_g",
    "co2e_basis",
    "co2e_g_annual_average",
    "embodied_g",
    "total_co2e_g",
    "intensity_source",
    "intensity_zone",
    "intensity_kind",
    "intensity_period",
    "flops",
    "host",
    "world_size",
    "error",
)


def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """``status``, ``tags`` ({k: v} or ["k=v"]), ``since`` ("7d" or a datetime), ``limit``."""
    from greentrack.timefmt import parse_since

    unknown = set(filters) - {"status", "tags", "since", "limit"}
    if unknown:
        raise ConfigError(
            f"unknown runs_frame filter(s) {', '.join(sorted(unknown))}; use status, tags, "
            "since or limit"
        )
    out: dict[str, Any] = {"limit": filters.get("limit")}
    if filters.get("status"):
        out["status"] = filters["status"]
    tags = filters.get("tags") or ()
    out["tags"] = list(tags.items()) if isinstance(tags, Mapping) else [_tag(t) for t in tags]
    since = filters.get("since")
    if isinstance(since, str):
        out["since"] = parse_since(since)
    elif isinstance(since, datetime):
        out["since"] = since
    return out


def _tag(text: str) -> tuple[str, str]:
    """``"k=v"`` -> ``("k", "v")``; a clear error for a missing ``=``."""
    if "=" not in text:
        raise ConfigError(f"tag {text!r} must be KEY=VALUE (or pass tags as a dict)")
    key, value = text.split("=", 1)
    return key, value


def _numeric(values: Sequence[Any]) -> Any:
    """Parameters are stored as text: make a column numeric when every value is a number."""
    import pandas as pd

    col = pd.Series(values, dtype=object)
    present = col.dropna()
    if present.empty:
        return col
    converted = pd.to_numeric(present, errors="coerce")
    if converted.notna().all():
        return pd.to_numeric(col, errors="coerce")
    return col


def runs_frame(
    project: str | None = None, *, db: str | None = None, **filters: Any
) -> pd.DataFrame:
    """One row per run, oldest first.

    Columns: :data:`RUN_COLUMNS` (times as UTC datetimes; energies in J / kWh; ``methods`` the
    comma-joined measurement methods; ``intensity_*`` the provenance of the CO₂e figure), then
    ``metric_<key>`` (last logged value), ``param_<key>`` (numeric when every value is) and
    ``tag_<key>``.

    Args:
        project: only this project.
        db: store URL (default: the configured one).
        **filters: ``status``, ``tags`` ({"k": "v"} or ["k=v"]), ``since`` ("7d" or a datetime),
            ``limit``.
    """
    import pandas as pd

    from greentrack.report.data import store
    from greentrack.report.model import methods_label
    from greentrack.store import queries

    opts = _filters(filters)
    with store(db) as conn:
        rows = queries.list_runs(conn, project=project, descending=False, **opts)
        objs = queries.run_objects(conn, rows)
    records = []
    for o in objs:
        src = o.get("intensity_source") or {}
        comp: dict[str, float] = {}
        for c in o["components"]:
            comp[c["component"]] = comp.get(c["component"], 0.0) + c["energy_j"] / 3.6e6
        rec: dict[str, Any] = {
            "id": o["id"],
            "project": o["project"],
            "name": o["name"],
            "status": o["status"],
            "started_at": o["started_at"],
            "ended_at": o["ended_at"],
            "duration_s": o["duration_s"],
            "energy_j": o["energy_j"],
            "energy_kwh": o["energy_kwh"],
            "pue": o["pue"],
            "facility_energy_kwh": o["facility_energy_kwh"],
            "energy_gpu_kwh": comp.get("gpu"),
            "energy_cpu_kwh": comp.get("cpu"),
            "energy_dram_kwh": comp.get("dram"),
            "energy_ram_kwh": comp.get("ram"),
            # the node's own figure (its BMC): beside energy_kwh, never in it
            "node_energy_kwh": o["node_energy_j"] / 3.6e6
            if o.get("node_energy_j") is not None
            else None,
            "methods": methods_label(o),
            "region": o["region"],
            "co2e_g": o["co2e_g"],
            "co2e_basis": o.get("co2e_basis"),
            "co2e_g_annual_average": o["co2e_g_annual_average"],
            "embodied_g": o.get("embodied_g"),  # schema 0004 (README: Embodied emissions)
            "total_co2e_g": o.get("total_co2e_g"),
            "intensity_source": src.get("name"),
            "intensity_zone": src.get("zone"),
            "intensity_kind": src.get("kind"),
            "intensity_period": src.get("period"),
            "flops": o["flops"],
            "host": o["host"],
            "world_size": o["world_size"],
            "error": o["error"],
        }
        for k, v in o["metrics"].items():
            rec[f"metric_{k}"] = v
        for k, v in o["params"].items():
            rec[f"param_{k}"] = v
        for k, v in o["tags"].items():
            rec[f"tag_{k}"] = v
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    extra = sorted(c for c in df.columns if c not in RUN_COLUMNS)
    extra = (
        [c for c in extra if c.startswith("metric_")]
        + [c for c in extra if c.startswith("param_")]
        + [c for c in extra if c.startswith("tag_")]
    )
    df = df.reindex(columns=[*RUN_COLUMNS, *extra])
    for col in ("started_at", "ended_at"):
        df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
    for col in (c for c in extra if c.startswith("param_")):
        df[col] = _numeric(df[col].tolist())
    for col in (
        "duration_s",
        "energy_j",
        "energy_kwh",
        "pue",
        "facility_energy_kwh",
        "energy_gpu_kwh",
        "energy_cpu_kwh",
        "energy_dram_kwh",
        "energy_ram_kwh",
        "co2e_g",
        "co2e_g_annual_average",
        "embodied_g",
        "total_co2e_g",
        "flops",
    ):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def samples_frame(run: str, *, db: str | None = None) -> pd.DataFrame:
    """The samples of one run (id or unique prefix, or ``latest``), ordered by device and time.

    Columns: ``t`` (UTC datetime), ``t_s`` (epoch s), ``rank``, ``device``, ``component``,
    ``energy_j`` (cumulative J since the run started), ``power_w`` (mean W since the previous
    point).
    """
    import numpy as np
    import pandas as pd

    from greentrack.report.data import store
    from greentrack.store.queries import resolve_run_id
    from greentrack.store.reads import load_samples

    with store(db) as conn:
        rid = resolve_run_id(conn, run)
        series = load_samples(conn, rid)
    if not series:
        return pd.DataFrame(
            {
                "t": pd.Series(dtype="datetime64[ns, UTC]"),
                "t_s": [],
                "rank": [],
                "device": [],
                "component": [],
                "energy_j": [],
                "power_w": [],
            }
        )
    t_s = np.concatenate([s.t_s for s in series])
    return pd.DataFrame(
        {
            "t": pd.to_datetime(t_s, unit="s", utc=True),
            "t_s": t_s,
            "rank": np.concatenate([np.full(s.t_s.size, s.rank) for s in series]),
            "device": np.concatenate([np.full(s.t_s.size, s.device, dtype=object) for s in series]),
            "component": np.concatenate(
                [np.full(s.t_s.size, s.component, dtype=object) for s in series]
            ),
            "energy_j": np.concatenate([s.energy_j for s in series]),
            "power_w": np.concatenate([s.power_w for s in series]),
        }
    )
