"""What-if: a stored run's emissions had it run in another region and/or at another time.

The run's measured energy time series is kept as it is (same devices, same power profile, same
PUE); only the intensity changes: that of ``region`` (default: the run's own) over the run's
sample times shifted by ``start_s - original_start_s``. The recomputation uses the same exact
accounting as the run itself (:func:`greentrack.carbon.accounting.account_samples`).

:func:`whatif` takes arrays and knows nothing of the store; :func:`whatif_run` loads a run from
the store (``greentrack.store.queries``) and calls it — that is what ``greentrack whatif`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from greentrack.carbon.accounting import CarbonAccount, account_samples
from greentrack.errors import ConfigError, IntensityDataError
from greentrack.timefmt import iso_utc

if TYPE_CHECKING:
    from greentrack.carbon.base import IntensitySource
    from greentrack.carbon.series import Provenance
    from greentrack.config import Config

__all__ = ["WhatIf", "whatif", "whatif_run"]


@dataclass(frozen=True)
class WhatIf:
    """Result of a what-if.

    Attributes:
        run: run id (None when not from the store).
        region: zone the run is re-accounted in.
        start: start of the shifted run, ISO 8601 UTC.
        co2e_g: emissions in that region at that time, g CO₂e.
        original_co2e_g: the run's stored emissions, g CO₂e (None when unknown).
        start_s: ``start`` as epoch seconds.
        shift_s: how far the samples were moved, seconds.
        provenance: of the intensity used.
        account: the full accounting (per device, per phase).
        warnings: e.g. a provider fallback.
        embodied_g: the run's stored embodied share, g CO₂e: it does not move with place or
            time, so it is the same in the what-if (None when not stored).
    """

    run: str | None
    region: str
    start: str
    co2e_g: float
    original_co2e_g: float | None
    start_s: float
    shift_s: float
    provenance: Provenance
    account: CarbonAccount | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    embodied_g: float | None = None

    def saving(self) -> str | None:
        """"saves X g of Y g; embodied Z g unchanged" (None without the original figure)."""
        from greentrack.carbon.embodied import saving_sentence

        if self.original_co2e_g is None:
            return None
        return saving_sentence(
            self.original_co2e_g - self.co2e_g, self.original_co2e_g, self.embodied_g
        )

    def to_dict(self) -> dict[str, Any]:
        """``{run, region, start, co2e_g, original_co2e_g, embodied_g, saving, source}``
        (source = provenance; co2e_g figures are operational)."""
        return {
            "run": self.run,
            "region": self.region,
            "start": self.start,
            "co2e_g": self.co2e_g,
            "original_co2e_g": self.original_co2e_g,
            "embodied_g": self.embodied_g,
            "saving": self.saving(),
            "source": self.provenance.to_dict(),
        }


def _factorize(arr: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct values (as text) and each element's index into them."""
    if arr.dtype.kind == "O":  # a dict beats sorting Python objects
        index: dict[Any, int] = {}
        codes = np.fromiter(
            (index.setdefault(x, len(index)) for x in arr.tolist()), dtype=np.int64, count=arr.size
        )
        return [str(k) for k in index], codes
    uniq, codes = np.unique(arr, return_inverse=True)
    return [str(u) for u in uniq.tolist()], codes.reshape(-1)


def _device_labels(samples: Mapping[str, Any], n: int) -> np.ndarray | None:
    """One label per sample, ``[rank/]component:device``, from whichever of those are present.

    Built from the distinct combinations only (string operations on a few labels, integer
    codes for the samples), so that a week of one-second samples stays fast.
    """
    columns: list[tuple[list[str], np.ndarray, str]] = []
    rank = samples.get("rank")
    if rank is not None:
        uniq, codes = _factorize(np.asarray(rank))
        if len(uniq) > 1:
            columns.append((uniq, codes, "/"))
    for key, sep in (("component", ":"), ("device", "")):
        value = samples.get(key)
        if value is not None:
            columns.append((*_factorize(np.asarray(value)), sep))
    if not columns:
        return None
    code = np.zeros(n, dtype=np.int64)
    for uniq, codes, _ in columns:
        code = code * len(uniq) + codes
    combos, inverse = np.unique(code, return_inverse=True)
    names = []
    for c in combos.tolist():
        parts = []
        for uniq, _, sep in reversed(columns):
            parts.append(f"{uniq[c % len(uniq)]}{sep}")
            c //= len(uniq)
        names.append("".join(reversed(parts)))
    return np.asarray(names)[inverse.reshape(-1)]


def whatif(
    samples: Mapping[str, Any],
    *,
    region: str | None = None,
    start_s: float | None = None,
    source: IntensitySource,
    original_co2e_g: float | None,
    run: str | None = None,
    run_region: str | None = None,
    original_start_s: float | None = None,
    pue: float = 1.0,
    phases: Sequence[tuple[str, float, float]] = (),
) -> WhatIf:
    """Recompute a run's emissions for another region and/or start time.

    Args:
        samples: the run's samples: ``t_s`` (epoch s) and ``energy_j`` (cumulative, J) arrays,
            optionally ``device`` and ``component`` labels per sample (as returned by
            ``greentrack.store.queries.run_samples``).
        region: zone to re-account in (any accepted spelling); None: ``run_region``.
        start_s: new start, epoch seconds; None: the original start (no shift).
        source: intensity source to use (e.g. ``get_source("csv", csv=[...])``).
        original_co2e_g: the run's stored emissions, reported alongside.
        run: run id, reported.
        run_region: the run's own zone (used when ``region`` is None).
        original_start_s: when the run started (meters at 0); default: the first sample.
        pue: facility overhead to apply, as for the original run.
        phases: ``(name, t0_s, t1_s)`` of the original run; shifted with the samples.

    Raises:
        ConfigError: neither ``region`` nor ``run_region``.
        IntensityDataError: no samples.
        UnknownRegionError: a region no source knows.
    """
    from greentrack.carbon.regions import zone_info
    from greentrack.errors import UnknownRegionError

    t = np.asarray(samples.get("t_s", []), dtype=np.float64)
    e = np.asarray(samples.get("energy_j", []), dtype=np.float64)
    if t.size == 0:
        raise IntensityDataError("the run has no energy samples to recompute; nothing to do")
    wanted = region if region is not None and str(region).strip() else run_region
    if not wanted:
        raise ConfigError("what-if needs a region: pass --region ZONE (the run has none stored)")
    try:
        zone = zone_info(str(wanted)).zone
    except UnknownRegionError:
        if not source.accepts_native_zones:
            raise
        zone = str(wanted)
    t_first = float(t.min())
    origin = float(original_start_s) if original_start_s is not None else t_first
    shift = float(start_s) - origin if start_s is not None else 0.0
    shifted = t + shift
    lo = float(shifted.min())
    if original_start_s is not None:
        lo = min(lo, origin + shift)
    series = source.series(zone, lo, float(shifted.max()))
    acct = account_samples(
        shifted,
        e,
        series,
        device=_device_labels(samples, t.size),
        phases=[(n, p0 + shift, p1 + shift) for n, p0, p1 in phases],
        pue=pue,
        start_s=origin + shift if original_start_s is not None else None,
    )
    return WhatIf(
        run=run,
        region=zone,
        start=iso_utc(origin + shift),
        co2e_g=acct.co2e_g,
        original_co2e_g=None if original_co2e_g is None else float(original_co2e_g),
        start_s=origin + shift,
        shift_s=shift,
        provenance=acct.provenance,
        account=acct,
        warnings=tuple(source.pop_warnings()),
    )


def _as_epoch(value: Any) -> float | None:
    from greentrack.timefmt import parse_time

    return None if value is None else parse_time(value)


def whatif_run(
    db_url: str | None,
    run_id: str,
    *,
    region: str | None = None,
    start_s: float | None = None,
    source: str | None = None,
    csv: Sequence[str | Path] | None = None,
    config: Config | None = None,
    csv_options: Mapping[str, Any] | None = None,
) -> WhatIf:
    """Load run ``run_id`` (id or unique prefix) from the store and call :func:`whatif`.

    Uses ``greentrack.store.queries``: ``get_run`` (keys ``id``, ``co2e_g``, ``region``,
    ``pue``, ``started_at``, ``phases`` with ``path``/``name``, ``started_at``, ``duration_s``)
    and ``run_samples``. The intensity source is ``source`` (default: ``csv`` when files are
    given, else the configured provider).
    """
    from greentrack.carbon.registry import get_source
    from greentrack.store import queries

    if config is None:
        from greentrack.config import load_config

        config = load_config()
    conn = queries.open_store(db_url or config.db_url)
    try:
        run = queries.get_run(conn, run_id)
        rid = str(run["id"])
        # what the run's CO2e is of: the node's series where a BMC measured it
        samples = queries.run_samples(conn, rid, basis="co2e")
    finally:
        conn.close()
    src = get_source(source, config, csv=list(csv) if csv else None, **dict(csv_options or {}))
    phases = []
    for ph in run.get("phases") or []:
        p0 = _as_epoch(ph.get("started_at"))
        if p0 is None or ph.get("duration_s") is None:
            continue
        phases.append((str(ph.get("path") or ph.get("name")), p0, p0 + float(ph["duration_s"])))
    pue = run.get("pue")
    result = whatif(
        samples,
        region=region,
        start_s=start_s,
        source=src,
        original_co2e_g=run.get("co2e_g"),
        run=rid,
        run_region=run.get("region"),
        original_start_s=_as_epoch(run.get("started_at")),
        pue=float(pue) if pue is not None else config.pue,
        phases=phases,
    )
    return replace(result, embodied_g=run.get("embodied_g"))
