"""Report-side helpers: which store, an open reader, times, and downsampling for plots.

The reads themselves (run objects, samples) are :mod:`greentrack.store.reads`. Plots never draw
more points than a screen has pixels: :func:`envelope` reduces a series to per-bucket min / max /
time-weighted mean, so every spike stays visible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from greentrack.store.dbapi import Connection

__all__ = ["Envelope", "db_url", "envelope", "iso_to_s", "store"]


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
