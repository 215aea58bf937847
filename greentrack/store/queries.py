"""Reading runs back: the run JSON objects of the CLI contract, filters, samples.

The filters take parsed values (``since`` a datetime, ``tags`` (key, value) pairs); the parsers
of what a user types are :func:`greentrack.timefmt.parse_since` and
:func:`greentrack.cli.filters.parse_tags`. Bulk reads for reports and plots (samples per device,
reduced in buckets) are :mod:`greentrack.store.reads`.

All filters are bound parameters. Status is *effective*: a ``running`` run whose heartbeat is
older than three checkpoint intervals (or whose process is gone, on the same host) reads as
``crashed``, with the energy of its last checkpoint; :func:`reconcile` writes that down.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from greentrack import hardware
from greentrack.errors import ConfigError, RunLookupError
from greentrack.store.dbapi import Connection, decode_json, decode_time
from greentrack.store.schema import open_reader as open_store  # readers need no write access
from greentrack.units import J_PER_KWH

__all__ = [
    "get_run",
    "list_runs",
    "open_store",
    "reconcile",
    "resolve_run_id",
    "run_objects",
    "run_samples",
]

SORT_COLUMNS = {
    "started": "started_at",
    "energy": "energy_j",
    "duration": "duration_s",
    "co2e": "co2e_g",
    "name": "name",
    "project": "project",
}
STATUSES = ("running", "finished", "failed", "interrupted", "crashed")
_RUN_COLUMNS = (
    "id, project, name, status, started_at, ended_at, heartbeat_at, duration_s, energy_j, pue, "
    "region, region_origin, co2e_g, co2e_g_annual, intensity_source, host, pid, world_size, "
    "checkpoint_s, error, flops, forecast, embodied_g, embodied, node_energy_j, co2e_basis, "
    "co2e_energy_j"
)


def _iso(dt: Any) -> str | None:
    value = decode_time(dt)
    return None if value is None else value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(row: dict[str, Any], now: datetime | None = None) -> str:
    """``crashed`` for a running run that stopped checkpointing; else the stored status."""
    if row["status"] != "running":
        return row["status"]
    same_host = row.get("host") == hardware.hostname()
    pid = row.get("pid")
    if same_host and pid and pid != os.getpid() and not _pid_alive(int(pid)):
        return "crashed"
    hb = decode_time(row.get("heartbeat_at")) or decode_time(row["started_at"])
    now = now or datetime.now(UTC).replace(tzinfo=None)
    stale_s = max(3.0 * float(row.get("checkpoint_s") or 10.0), 30.0)
    if hb is not None and (now - hb).total_seconds() > stale_s:
        return "crashed"
    return "running"


def list_runs(
    conn: Connection,
    *,
    project: str | None = None,
    status: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
    since: datetime | None = None,
    sort: str = "started",
    descending: bool = True,
    limit: int | None = 50,
) -> list[dict[str, Any]]:
    """Run rows (newest first by default), filtered with bound parameters."""
    where, params = [], {}
    if project:
        where.append("project = :project")
        params["project"] = project
    if status and status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}; choose one of {', '.join(STATUSES)}")
    if status in ("running", "crashed"):
        where.append("status IN ('running', :status)")
        params["status"] = status
    elif status:
        where.append("status = :status")
        params["status"] = status
    for i, (k, v) in enumerate(tags):
        where.append(
            f"EXISTS (SELECT 1 FROM tags t WHERE t.run_id = runs.id AND t.key = :tk{i} "
            f"AND t.value = :tv{i})"
        )
        params[f"tk{i}"], params[f"tv{i}"] = k, v
    if since is not None:
        where.append("started_at >= :since")
        params["since"] = since
    if sort not in SORT_COLUMNS:
        raise ConfigError(f"unknown sort key {sort!r}; choose one of {', '.join(SORT_COLUMNS)}")
    sql = f"SELECT {_RUN_COLUMNS} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {SORT_COLUMNS[sort]} {'DESC' if descending else 'ASC'}, id"
    if limit and status not in ("running", "crashed"):  # membership does not depend on liveness
        sql += " LIMIT :limit"
        params["limit"] = int(limit)
    rows = conn.query(sql, params)
    for r in rows:
        r["status"] = effective_status(r)
    if status:
        rows = [r for r in rows if r["status"] == status]
    return rows[:limit] if limit else rows


def resolve_run_id(conn: Connection, prefix: str) -> str:
    """The full id of the one run whose id starts with ``prefix`` (or ``latest``), or that is
    ``prefix`` exactly (an id given with ``GREENTRACK_RUN_ID``: ``[A-Za-z0-9_-]``, 1-64 chars)."""
    from greentrack.security import is_run_id

    given = prefix.strip()
    if is_run_id(given) and conn.query("SELECT id FROM runs WHERE id = :id", {"id": given}):
        return given
    prefix = given.lower()
    if prefix in ("latest", "last"):
        row = conn.query("SELECT id FROM runs ORDER BY started_at DESC, id LIMIT 1")
        if not row:
            raise RunLookupError("the store has no runs yet: try `greentrack run -- CMD`")
        return row[0]["id"]
    if not prefix or not all(c in "0123456789abcdef" for c in prefix):
        raise RunLookupError(f"{prefix!r} is not a run id (hex); list runs with `greentrack runs`")
    rows = conn.query(
        "SELECT id FROM runs WHERE id >= :lo AND id < :hi ORDER BY id LIMIT 6",
        {"lo": prefix, "hi": prefix + "g"},
    )
    if not rows:
        raise RunLookupError(f"no run id starts with {prefix!r}; list runs with `greentrack runs`")
    if len(rows) > 1:
        ids = ", ".join(r["id"][: len(prefix) + 4] for r in rows[:5])
        raise RunLookupError(f"{prefix!r} matches several runs ({ids}, ...): give more characters")
    return rows[0]["id"]


def _children(conn: Connection, table: str, ids: Sequence[str], cols: str) -> dict[str, list]:
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join(f":i{n}" for n in range(len(chunk)))
        rows = conn.query(
            f"SELECT run_id, {cols} FROM {table} WHERE run_id IN ({marks})",
            {f"i{n}": v for n, v in enumerate(chunk)},
        )
        for r in rows:
            out[r.pop("run_id")].append(r)
    return out


def run_objects(
    conn: Connection, rows: Sequence[dict[str, Any]], *, detail: bool = False
) -> list[dict[str, Any]]:
    """Run rows -> the contract's JSON objects (components, phases, metrics, params, tags)."""
    ids = [r["id"] for r in rows]
    from greentrack.meters.nodepower import is_node

    comps = _children(
        conn,
        "components",
        ids,
        "rank, host, component, device, energy_j, method, model, note, co2e_g",
    )
    params = _children(conn, "params", ids, "key, value")
    tags = _children(conn, "tags", ids, "key, value")
    metrics = _last_metrics(conn, ids)
    phases = _children(
        conn,
        "phases",
        ids,
        "name, path, depth, started_at, duration_s, energy_j, co2e_g, method",
    )
    events = _children(conn, "events", ids, "t_s, level, source, message") if detail else {}
    joined = _joined_ranks(conn, ids)
    out = []
    for r in rows:
        rid = r["id"]
        every = sorted(comps[rid], key=lambda c: (c["rank"], c["device"]))
        components = [c for c in every if not is_node(c["component"])]
        node_rows = [c for c in every if is_node(c["component"])]  # beside, never added
        phase_rows = sorted(phases[rid], key=lambda p: (decode_time(p["started_at"]), p["depth"]))
        totals: dict[str, dict[str, Any]] = {}
        for p in phase_rows:
            t = totals.setdefault(
                p["path"],
                {"name": p["path"], "count": 0, "duration_s": 0.0, "energy_j": 0.0, "co2e_g": None},
            )
            t["count"] += 1
            t["duration_s"] += p["duration_s"] or 0.0
            t["energy_j"] += p["energy_j"] or 0.0
            if p["co2e_g"] is not None:
                t["co2e_g"] = (t["co2e_g"] or 0.0) + p["co2e_g"]
        processes: dict[int, dict[str, Any]] = {}
        for c in components:
            proc = processes.setdefault(
                c["rank"], {"rank": c["rank"], "host": c["host"], "components": [], "energy_j": 0.0}
            )
            proc["components"].append(
                {k: c[k] for k in ("component", "device", "energy_j", "method", "model", "note")}
            )
            proc["energy_j"] += c["energy_j"]
        for rank, host, note in joined.get(rid, ()):  # ranks that joined, measuring or not
            proc = processes.setdefault(
                rank, {"rank": rank, "host": host, "components": [], "energy_j": 0.0}
            )
            proc["note"] = note
        for c in node_rows:
            proc = processes.setdefault(
                c["rank"], {"rank": c["rank"], "host": c["host"], "components": [], "energy_j": 0.0}
            )
            proc["node_energy_j"] = proc.get("node_energy_j", 0.0) + c["energy_j"]
        for proc in processes.values():
            proc.setdefault("note", None)
            proc.setdefault("node_energy_j", None)
        nodes: dict[str, dict[str, Any]] = {}
        for rank in sorted(processes):
            proc = processes[rank]
            node = nodes.setdefault(
                proc["host"],
                {"host": proc["host"], "ranks": [], "energy_j": 0.0, "node_energy_j": None},
            )
            node["ranks"].append(rank)
            node["energy_j"] += proc["energy_j"]
            if proc["node_energy_j"] is not None:
                node["node_energy_j"] = (node["node_energy_j"] or 0.0) + proc["node_energy_j"]
        energy_j = float(r["energy_j"] or 0.0)
        obj: dict[str, Any] = {
            "id": rid,
            "project": r["project"],
            "name": r["name"],
            "status": r["status"],
            "started_at": _iso(r["started_at"]),
            "ended_at": _iso(r["ended_at"]),
            "duration_s": r["duration_s"],
            "energy_j": energy_j,
            "energy_kwh": energy_j / J_PER_KWH,
            "pue": r["pue"],
            "facility_energy_kwh": energy_j * float(r["pue"] or 1.0) / J_PER_KWH,
            "components": [
                {
                    k: c[k]
                    for k in ("component", "device", "energy_j", "method", "rank", "host", "note")
                }
                for c in components
            ],
            # the whole node's figure from its BMC, per rank that read it: beside energy_j
            "node_power": [
                {
                    k: c[k]
                    for k in ("component", "device", "energy_j", "method", "model", "rank", "host")
                }
                | {"note": c["note"]}
                for c in node_rows
            ],
            "node_energy_j": r["node_energy_j"],
            "co2e_basis": r["co2e_basis"],
            # the energy the CO2e is of (J, before PUE): the nodes' where their BMC measured it
            "co2e_energy_j": r["co2e_energy_j"] if r["co2e_energy_j"] is not None else energy_j,
            "phases": [
                {
                    "name": p["name"],
                    "path": p["path"],
                    "started_at": _iso(p["started_at"]),
                    "duration_s": p["duration_s"],
                    "energy_j": p["energy_j"],
                    "co2e_g": p["co2e_g"],
                    "method": p["method"],
                }
                for p in phase_rows[:1000]
            ],
            "phase_totals": list(totals.values()),
            "metrics": metrics.get(rid, {}),
            "params": {p["key"]: p["value"] for p in params[rid]},
            "tags": {t["key"]: t["value"] for t in tags[rid]},
            "region": r["region"],
            "co2e_g": r["co2e_g"],
            "co2e_g_annual_average": r["co2e_g_annual"],
            "intensity_source": decode_json(r["intensity_source"]),
            "host": r["host"],
            "world_size": r["world_size"],
            "processes": [processes[k] for k in sorted(processes)],
            "nodes": list(nodes.values()),
            "flops": r["flops"],
            "error": r["error"],
            "forecast": decode_json(r["forecast"]),
            "embodied_g": r["embodied_g"],
            "embodied": decode_json(r["embodied"]),
            "total_co2e_g": (
                r["co2e_g"] + r["embodied_g"]
                if r["co2e_g"] is not None and r["embodied_g"] is not None
                else None
            ),
        }
        if detail:
            obj["events"] = sorted(events[rid], key=lambda e: e["t_s"])
            full = conn.query(
                "SELECT meta, plan, intensity_series, heartbeat_at FROM runs WHERE id = :id",
                {"id": rid},
            )[0]
            obj["meta"] = decode_json(full["meta"])
            obj["plan"] = decode_json(full["plan"])
            obj["intensity_series"] = decode_json(full["intensity_series"])
            obj["heartbeat_at"] = _iso(full["heartbeat_at"])
        out.append(obj)
    return out


def _joined_ranks(conn: Connection, ids: Sequence[str]) -> dict[str, list[tuple[int, str, Any]]]:
    """run id -> (rank, host, note) of every rank that recorded joining a distributed run
    (:func:`greentrack.distributed.joined_event`: events of source ``rank``)."""
    from greentrack.store.rank_events import JOINED_SOURCE, parse_joined

    out: dict[str, list[tuple[int, str, Any]]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join(f":i{n}" for n in range(len(chunk)))
        rows = conn.query(
            f"SELECT run_id, message FROM events WHERE run_id IN ({marks}) AND source = :src",
            {"src": JOINED_SOURCE, **{f"i{n}": v for n, v in enumerate(chunk)}},
        )
        for r in rows:
            parsed = parse_joined(r["message"])
            if parsed is not None:
                out.setdefault(r["run_id"], []).append(parsed)
    return out


def _last_metrics(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Each run's latest value of each metric (latest ``t_s``; at the same ``t_s`` the highest
    step); a NULL value (a NaN that was logged) reads back as ``float('nan')``."""
    out: dict[str, dict[str, float]] = {}
    best: dict[tuple[str, str], tuple[int, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join(f":i{n}" for n in range(len(chunk)))
        rows = conn.query(
            "SELECT m.run_id, m.key, m.step, m.id, m.value FROM metrics m JOIN ("
            f"SELECT run_id, key, MAX(t_s) AS t_s FROM metrics WHERE run_id IN ({marks}) "
            "GROUP BY run_id, key) last ON m.run_id = last.run_id AND m.key = last.key "
            "AND m.t_s = last.t_s",
            {f"i{n}": v for n, v in enumerate(chunk)},
        )
        for r in rows:
            rank = (-1 if r["step"] is None else int(r["step"]), r["id"])
            where = (r["run_id"], r["key"])
            if where in best and best[where] >= rank:
                continue
            best[where] = rank
            value = math.nan if r["value"] is None else float(r["value"])
            out.setdefault(r["run_id"], {})[r["key"]] = value
    return out


def get_run(conn: Connection, id_or_prefix: str, *, detail: bool = True) -> dict[str, Any]:
    """One run object (by unique id prefix), with events, metadata and plan."""
    rid = resolve_run_id(conn, id_or_prefix)
    rows = conn.query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = :id", {"id": rid})
    for r in rows:
        r["status"] = effective_status(r)
    return run_objects(conn, rows, detail=detail)[0]


def run_samples(conn: Connection, run_id: str, *, basis: str = "components") -> dict[str, Any]:
    """The run's stored time series as numpy arrays, ordered by (rank, device, t_s).

    Keys: ``t_s`` (epoch s), ``device``, ``component``, ``rank``, ``energy_j`` (cumulative J per
    device), ``power_w`` (mean W since the previous point).

    ``basis``: ``components`` (the default) leaves out the node's own figure (its BMC), which
    overlaps them; ``co2e`` gives what the run's CO2e is of: per rank, the node's series where
    that rank's CO2e is of the node (``runs.co2e_basis``), else its components'.
    """
    import numpy as np

    from greentrack.meters.nodepower import is_node

    if basis not in ("components", "co2e"):
        raise ValueError(f"basis must be 'components' or 'co2e', not {basis!r}")
    node_ranks: set[int] = set()
    if basis == "co2e":
        node_ranks = {
            r["rank"]
            for r in conn.query(
                "SELECT rank, component, co2e_g FROM components WHERE run_id = :id",
                {"id": run_id},
            )
            if is_node(r["component"]) and r["co2e_g"] is not None
        }
    rows = [
        r
        for r in conn.query(
            "SELECT rank, device, component, t_s, energy_j, power_w FROM samples "
            "WHERE run_id = :id ORDER BY rank, device, t_s",
            {"id": run_id},
        )
        if is_node(r["component"]) == (r["rank"] in node_ranks)
    ]
    return {
        "t_s": np.array([r["t_s"] for r in rows], dtype=np.float64),
        "device": np.array([r["device"] for r in rows], dtype=object),
        "component": np.array([r["component"] for r in rows], dtype=object),
        "rank": np.array([r["rank"] for r in rows], dtype=np.int64),
        "energy_j": np.array([r["energy_j"] for r in rows], dtype=np.float64),
        "power_w": np.array(
            [np.nan if r["power_w"] is None else r["power_w"] for r in rows], dtype=np.float64
        ),
    }


def reconcile(conn: Connection) -> list[str]:
    """Mark runs that stopped checkpointing as ``crashed``; returns their ids."""
    rows = conn.query(
        "SELECT id, status, started_at, heartbeat_at, checkpoint_s, host, pid FROM runs "
        "WHERE status = 'running'"
    )
    crashed = [r["id"] for r in rows if effective_status(r) == "crashed"]
    with conn.transaction():
        for rid in crashed:
            conn.execute(
                "UPDATE runs SET status = 'crashed', ended_at = heartbeat_at, "
                "error = COALESCE(error, 'process stopped checkpointing (killed or crashed)') "
                "WHERE id = :id AND status = 'running'",
                {"id": rid},
            )
    return crashed
