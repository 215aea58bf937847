"""Reading what reports and plots need from the store, fast: run objects, samples, downsampling.

Run objects are the CLI contract's (:func:`greentrack.store.queries.run_objects`). Samples are read
per device as plain float tuples straight into numpy (a million points in well under a second),
not through the row-as-dict helper. Plots never draw more points than a screen has pixels:
:func:`envelope` reduces a series to per-bucket min / max / time-weighted mean, so every spike
stays visible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from greentrack.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from greentrack.store.dbapi import Connection

__all__ = [
    "DeviceSeries",
    "Envelope",
    "db_url",
    "envelope",
    "iso_to_s",
    "load_runs",
    "load_samples",
    "store",
]


def db_url(url: str | None) -> str:
    """The store URL to use: ``url``, else the configured one (``GREENTRACK_DB`` / home)."""
    if url:
        return url
    from greentrack.config import load_config

    return load_config().db_url


@contextlib.contextmanager
def store(url: str | None) -> Iterator[Connection]:
    """An open store connection (schema checked), closed afterwards."""
    from greentrack.store.queries import open_store

    conn = open_store(db_url(url))
    try:
        yield conn
    finally:
        conn.close()


def iso_to_s(text: str | None) -> float | None:
    """``2026-01-01T12:00:00Z`` -> epoch seconds (UTC); None stays None."""
    if not text:
        return None
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt.timestamp()


def load_runs(
    conn: Connection,
    run_ids: Sequence[str] = (),
    *,
    project: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
    since: datetime | None = None,
    status: str | None = None,
    limit: int | None = None,
    detail: bool = True,
) -> list[dict[str, Any]]:
    """Run objects, oldest first: the runs named by id prefix, else those matching the filters.

    With neither ids nor filters this is the latest run. ``detail`` adds metadata (CPU/GPU
    models), the stored intensity series, events and plan to each object.

    Raises:
        RunLookupError: an id prefix matching no run or several.
        ConfigError: filters that match no run.
    """
    from greentrack.store import queries

    if run_ids:
        rows = []
        seen = set()
        for prefix in run_ids:
            rid = queries.resolve_run_id(conn, prefix)
            if rid not in seen:
                seen.add(rid)
                rows += conn.query(
                    f"SELECT {queries._RUN_COLUMNS} FROM runs WHERE id = :id", {"id": rid}
                )
        for r in rows:
            r["status"] = queries.effective_status(r)
    elif project or tags or since or status:
        rows = queries.list_runs(
            conn,
            project=project,
            tags=tags,
            since=since,
            status=status,
            limit=limit,
            descending=False,
        )
        if not rows:
            what = f"project {project!r}" if project else "these filters"
            raise ConfigError(f"no runs match {what}; list runs with `greentrack runs`")
    else:
        rid = queries.resolve_run_id(conn, "latest")
        rows = conn.query(f"SELECT {queries._RUN_COLUMNS} FROM runs WHERE id = :id", {"id": rid})
        for r in rows:
            r["status"] = queries.effective_status(r)
    if not detail:
        return queries.run_objects(conn, rows)
    objs = queries.run_objects(conn, rows)
    add_detail(conn, objs)
    return objs


def add_detail(conn: Connection, objs: list[dict[str, Any]]) -> None:
    """Metadata, plan, intensity series and events of many runs in a few queries."""
    from greentrack.store.dbapi import decode_json

    ids = [o["id"] for o in objs]
    by_id = {o["id"]: o for o in objs}
    for o in objs:
        o.update(meta=None, plan=None, intensity_series=None, events=[])
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join(f":i{n}" for n in range(len(chunk)))
        params = {f"i{n}": v for n, v in enumerate(chunk)}
        for r in conn.query(
            f"SELECT id, meta, plan, intensity_series FROM runs WHERE id IN ({marks})", params
        ):
            o = by_id[r["id"]]
            o["meta"] = decode_json(r["meta"])
            o["plan"] = decode_json(r["plan"])
            o["intensity_series"] = decode_json(r["intensity_series"])
        for r in conn.query(
            f"SELECT run_id, t_s, level, source, message FROM events WHERE run_id IN ({marks}) "
            "ORDER BY t_s",
            params,
        ):
            by_id[r.pop("run_id")]["events"].append(r)


@dataclass
class DeviceSeries:
    """One device's stored samples. Units: ``t_s`` epoch seconds, ``energy_j`` cumulative joules
    since the run started, ``power_w`` mean watts since the previous point (NaN when unknown)."""

    device: str
    component: str
    rank: int
    t_s: np.ndarray
    energy_j: np.ndarray
    power_w: np.ndarray

    @property
    def label(self) -> str:
        return self.device if self.rank == 0 else f"{self.device} (rank {self.rank})"


def load_samples(conn: Connection, run_id: str) -> list[DeviceSeries]:
    """Every device's samples of a run, ordered by (rank, device) then time."""
    import numpy as np

    keys = conn.query(
        "SELECT rank, device, MIN(component) AS component, COUNT(*) AS n FROM samples "
        "WHERE run_id = :id GROUP BY rank, device ORDER BY rank, device",
        {"id": run_id},
    )
    out = []
    for k in keys:
        cur = conn.execute(
            "SELECT t_s, energy_j, power_w FROM samples WHERE run_id = :id AND rank = :rank "
            "AND device = :device ORDER BY t_s",
            {"id": run_id, "rank": k["rank"], "device": k["device"]},
        )
        arr = np.array(cur.fetchall(), dtype=np.float64).reshape(-1, 3)  # None -> nan
        out.append(
            DeviceSeries(
                device=k["device"],
                component=k["component"],
                rank=int(k["rank"]),
                t_s=arr[:, 0].copy(),
                energy_j=arr[:, 1].copy(),
                power_w=arr[:, 2].copy(),
            )
        )
    return out


@dataclass
class Envelope:
    """A series reduced to buckets: ``t_s`` bucket centres, ``low``/``high`` min and max of the
    values in the bucket, ``mean`` the time-weighted mean. ``reduced`` is False when the input
    was short enough to keep as is (then low == high == mean == the values)."""

    t_s: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    reduced: bool
    points: int
    bucket_s: float


def envelope(t_s: np.ndarray, values: np.ndarray, buckets: int = 1200) -> Envelope:
    """Reduce ``values`` over time ``t_s`` (sorted) to at most ``buckets`` equal time buckets.

    Each bucket keeps the min, the max and the mean weighted by the time each value covers (its
    interval since the previous point), so a plot of ``low..high`` shows every spike and the mean
    line keeps the energy. Empty buckets are NaN (a gap, not an interpolation).
    """
    import numpy as np

    t = np.asarray(t_s, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    n = t.size
    if n <= 2 * buckets or n < 2 or t[-1] <= t[0]:
        return Envelope(t, v, v, v, False, n, 0.0)
    edges = np.linspace(t[0], t[-1], buckets + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, buckets - 1)
    ok = ~np.isnan(v)
    low = np.full(buckets, np.inf)
    high = np.full(buckets, -np.inf)
    # idx is sorted (t is), so reduceat over the bucket starts does min/max in one pass
    starts = np.searchsorted(idx, np.arange(buckets), side="left")
    present = np.bincount(idx[ok], minlength=buckets) > 0
    vv = np.where(ok, v, np.nan)
    lo_fill = np.where(ok, v, np.inf)
    hi_fill = np.where(ok, v, -np.inf)
    nonempty = starts < n
    s = starts[nonempty]
    low[nonempty] = np.minimum.reduceat(lo_fill, s)
    high[nonempty] = np.maximum.reduceat(hi_fill, s)
    dt = np.empty(n)
    dt[0] = 0.0
    dt[1:] = np.diff(t)
    w = np.where(ok, dt, 0.0)
    wsum = np.bincount(idx, weights=w, minlength=buckets)
    vsum = np.bincount(idx, weights=np.where(ok, vv, 0.0) * w, minlength=buckets)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(wsum > 0, vsum / wsum, np.nan)
    mean = np.where(np.isnan(mean) & present, (low + high) / 2, mean)
    low[~present] = np.nan
    high[~present] = np.nan
    mean[~present] = np.nan
    centres = (edges[:-1] + edges[1:]) / 2
    return Envelope(centres, low, high, mean, True, n, float(edges[1] - edges[0]))
