"""Writing checkpoints to the store: one transaction per checkpoint.

Every write is idempotent — rows have natural unique keys and ``ON CONFLICT`` clauses, run fields
are guarded by a sequence number — so a checkpoint can be replayed from the spool
(:mod:`greentrack.store.spool`) any number of times, in any order, without double counting or
regressing a run. When to write, retry or spool is :mod:`greentrack.store.delivery`'s policy.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import math
import os
import threading
from collections import OrderedDict
from typing import Any

from greentrack.errors import StoreError, StoreRejectedError, StoreUnavailableError
from greentrack.store.checkpoint import Checkpoint
from greentrack.store.dbapi import Connection, data_errors, driver_errors
from greentrack.store.digest import sha256_hex
from greentrack.store.schema import open_store

log = logging.getLogger("greentrack")

__all__ = ["StoreWriter", "metric_id"]


def metric_id(run_id: str, key: str, step: int | None, t_s: float) -> str:
    """The deterministic primary key of a metric row (schema 0003): the first 32 hex digits of
    the SHA-256 of ``[run_id, key, step, t_s]`` as JSON (ASCII, step an int or null, t_s a float
    in its shortest round-trip form). Computed from the row itself, so a spool line written by
    any version replays onto the same key, and a metric without a step conflicts like any other.
    """
    text = json.dumps([run_id, key, None if step is None else int(step), float(t_s)])
    return sha256_hex(text.encode("ascii"))[:32]


def _metric_value(value: Any) -> float | None:
    """A metric value as stored: NaN -> None (NULL); ±inf and finite floats as they are."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


_RUN_INSERT = (
    "id",
    "project",
    "name",
    "status",
    "started_at",
    "heartbeat_at",
    "energy_j",
    "pue",
    "region",
    "region_origin",
    "host",
    "pid",
    "world_size",
    "checkpoint_s",
    "checkpoint_seq",
    "meta",
)
_RUN_UPDATE = (  # written by the run's owner (rank 0); whoever inserted the row first
    "started_at",
    "host",
    "pid",
    "status",
    "ended_at",
    "heartbeat_at",
    "duration_s",
    "pue",
    "region",
    "region_origin",
    "co2e_g",
    "co2e_g_annual",
    "intensity_source",
    "intensity_series",
    "world_size",
    "meta",
    "error",
    "flops",
    "plan",
    "forecast",
    "embodied_g",  # schema 0004 (greentrack.carbon.embodied)
    "embodied",
)


_SHARED: OrderedDict[str, tuple[int, Connection]] = OrderedDict()
_SHARED_LOCK = threading.Lock()
_SHARED_MAX = 8


def _shared_connection(url: str) -> Connection:
    """One connection per store and process, kept open between runs.

    Closing the last connection to a WAL-mode SQLite file checkpoints the WAL and syncs the
    file (~20 ms), and a PostgreSQL connection takes a round trip or three to open; runs in the
    same process therefore share one. Its lock serialises their transactions. A forked child
    never uses its parent's connection. The connection is opened outside the registry's lock:
    a store that takes its connect timeout to answer never holds up another store's runs, nor
    the process's exit (:func:`_close_shared`).
    """
    pid = os.getpid()
    with _SHARED_LOCK:
        entry = _SHARED.get(url)
        if entry is not None and entry[0] == pid:
            _SHARED.move_to_end(url)
            return entry[1]
    conn = open_store(url)
    evicted: list[Connection] = []
    with _SHARED_LOCK:
        entry = _SHARED.get(url)
        if entry is not None and entry[0] == pid:  # another thread opened one meanwhile
            evicted.append(conn)
            conn = entry[1]
        else:
            _SHARED[url] = (pid, conn)
            while len(_SHARED) > _SHARED_MAX:
                _, (old_pid, old) = _SHARED.popitem(last=False)
                if old_pid == pid:
                    evicted.append(old)
    for old in evicted:
        old.close()
    return conn


def _drop_shared(url: str, conn: Connection) -> None:
    with _SHARED_LOCK:
        entry = _SHARED.get(url)
        if entry is not None and entry[1] is conn:
            del _SHARED[url]
    conn.close()


def _reset_shared_after_fork() -> None:
    """A fork()ed child never uses its parent's connections (nor a lock a parent thread held)."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_shared_after_fork)


@atexit.register
def _close_shared() -> None:
    """At exit: close this process's shared connections; never waits more than 1 s for the
    registry (exit has a deadline)."""
    if not _SHARED_LOCK.acquire(timeout=1.0):
        return
    try:
        conns = [conn for pid, conn in _SHARED.values() if pid == os.getpid()]
        _SHARED.clear()
    finally:
        _SHARED_LOCK.release()
    for conn in conns:
        conn.close()


class StoreWriter:
    """Writes checkpoints through one lazily opened connection; reconnects after failures.

    Args:
        url: the store.
        shared: use the process-wide connection of this store (the tracker does); ``close()``
            then leaves it open for the next run.
    """

    def __init__(self, url: str, *, shared: bool = False) -> None:
        self.url = url
        self.shared = shared
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = _shared_connection(self.url) if self.shared else open_store(self.url)
        return self._conn

    def _discard(self) -> None:
        """Forget a connection that failed (closing it, also when shared)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if self.shared:
                _drop_shared(self.url, conn)
            else:
                conn.close()

    def open(self) -> None:
        """Connect and check the schema now (raises StoreError subclasses)."""
        try:
            self._connection()
        except driver_errors() as e:
            raise StoreUnavailableError(f"store unavailable: {type(e).__name__}: {e}") from e

    def abort(self) -> None:
        """From any thread: make a write blocked on a store that stopped answering fail at once
        (:meth:`Connection.abort`); that write then discards the connection."""
        conn = self._conn
        if conn is not None:
            conn.abort()

    def close(self) -> None:
        if self._conn is not None:
            if not self.shared:
                self._conn.close()
            self._conn = None

    def write(self, cp: Checkpoint) -> str | None:
        """Write one checkpoint in one transaction.

        When the database refuses the values of the checkpoint (a data or integrity error, which
        no retry can cure), it is written again without the user's metrics, params and tags, so
        that the energy still lands; when even that is refused (the user's text in the run row,
        a phase or an event: a NUL byte on PostgreSQL, a lone surrogate anywhere), once more with
        that text escaped as the call sites escape free text (NUL -> U+FFFD, a lone surrogate ->
        ``\\udXXX``). The reason is returned and the caller keeps the left-out part
        (:meth:`~greentrack.store.spool.Spool.reject`). Returns None when everything was written.

        Raises:
            StoreUnavailableError: the database failed (the caller spools the checkpoint).
            StoreRejectedError: the database refuses even the checkpoint's energy (the caller
                keeps it aside instead of retrying it forever).
            StoreError: the schema is wrong (SchemaOutdatedError) or the URL is unusable.
        """
        try:
            self._write_once(cp)
            return None
        except StoreRejectedError as refused:
            core, user = cp.split_user_data()
            if user is not None:
                try:
                    self._write_once(core)
                    return str(refused)
                except StoreRejectedError:
                    pass
            clean = _storable_checkpoint(core)
            if clean == core:
                raise refused from None
            try:
                self._write_once(clean)
            except StoreRejectedError:
                raise refused from None
            return f"{refused} (the run's own text was stored escaped)"

    def _write_once(self, cp: Checkpoint) -> None:
        try:
            conn = self._connection()
            with conn.transaction():
                _write(conn, cp)
        except StoreError:
            self._discard()
            raise
        except data_errors() as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise StoreRejectedError(
                f"the store refused the data: {type(e).__name__}: {first}"
            ) from e
        except driver_errors() as e:
            self._discard()
            raise StoreUnavailableError(f"store unavailable: {type(e).__name__}: {e}") from e
        except (ValueError, TypeError, OverflowError) as e:  # a value the driver cannot bind
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise StoreRejectedError(
                f"the store refused the data: {type(e).__name__}: {first}"
            ) from e


def _storable_checkpoint(cp: Checkpoint) -> Checkpoint:
    """``cp`` with every string made storable (:func:`greentrack.security.storable`: NUL ->
    U+FFFD, a lone surrogate -> its ``\\udXXX`` escape), the way the call sites escape free
    text: for checkpoints that did not pass them (spool lines of older versions)."""
    from greentrack.security import storable_tree

    return dataclasses.replace(
        cp, **{f.name: storable_tree(getattr(cp, f.name)) for f in dataclasses.fields(cp)}
    )


def _write(conn: Connection, cp: Checkpoint) -> None:
    rid = cp.run_id
    if cp.run:
        row = {k: cp.run.get(k) for k in _RUN_INSERT}
        row.update(id=rid, checkpoint_seq=0)
        row["energy_j"] = row["energy_j"] or 0.0
        row["pue"] = row["pue"] or 1.0
        row["world_size"] = row["world_size"] or 1
        row["checkpoint_s"] = row["checkpoint_s"] or 10.0
        conn.execute(conn.insert_sql("runs", _RUN_INSERT, ["id"]), row)
    if cp.params:
        conn.executemany(
            conn.insert_sql("params", ["run_id", "key", "value"], ["run_id", "key"], ["value"]),
            [{"run_id": rid, "key": k, "value": str(v)} for k, v in cp.params.items()],
        )
    if cp.tags:
        conn.executemany(
            conn.insert_sql("tags", ["run_id", "key", "value"], ["run_id", "key"], ["value"]),
            [{"run_id": rid, "key": k, "value": str(v)} for k, v in cp.tags.items()],
        )
    if cp.components:
        # Lock the run row first: concurrent ranks then sum each other's committed components
        # (PostgreSQL, READ COMMITTED); SQLite serialises writers anyway.
        conn.execute("UPDATE runs SET energy_j = energy_j WHERE id = :id", {"id": rid})
        cols = [
            "run_id",
            "rank",
            "host",
            "component",
            "device",
            "energy_j",
            "method",
            "model",
            "note",
            "seq",
            "co2e_g",  # schema 0005: each device's CO2e, with the final checkpoint
            "co2e_g_annual",
        ]
        sql = (
            conn.insert_sql(
                "components",
                cols,
                ["run_id", "rank", "device"],
                ["energy_j", "method", "model", "note", "host", "seq", "co2e_g", "co2e_g_annual"],
            )
            + " WHERE components.seq <= excluded.seq"
        )
        conn.executemany(
            sql,
            [
                {**{c: comp.get(c) for c in cols}, "run_id": rid, "rank": cp.rank, "seq": cp.seq}
                for comp in cp.components
            ],
        )
    if cp.samples:
        cols = ["run_id", "rank", "device", "component", "t_s", "energy_j", "power_w"]
        conn.executemany(
            conn.insert_sql("samples", cols, ["run_id", "rank", "device", "t_s"]),
            [{**s, "run_id": rid, "rank": cp.rank} for s in cp.samples],
        )
    if cp.metrics:
        cols = ["id", "run_id", "key", "step", "value", "t_s"]
        conn.executemany(
            conn.insert_sql("metrics", cols, ["id"]),
            [
                {
                    "id": metric_id(rid, m["key"], m.get("step"), m["t_s"]),
                    "run_id": rid,
                    "key": m["key"],
                    "step": m.get("step"),
                    "value": _metric_value(m.get("value")),
                    "t_s": m["t_s"],
                }
                for m in cp.metrics
            ],
        )
    if cp.events:
        cols = ["id", "run_id", "rank", "t_s", "level", "source", "message"]
        conn.executemany(
            conn.insert_sql("events", cols, ["id"]),
            [{**e, "run_id": rid, "rank": cp.rank} for e in cp.events],
        )
    if cp.phases:
        cols = [
            "id",
            "run_id",
            "rank",
            "name",
            "path",
            "depth",
            "started_at",
            "ended_at",
            "t0_s",
            "t1_s",
            "duration_s",
            "energy_j",
            "components",
            "co2e_g",
            "method",
        ]
        conn.executemany(
            conn.insert_sql(
                "phases",
                cols,
                ["id"],
                ["ended_at", "t1_s", "duration_s", "energy_j", "components", "co2e_g", "method"],
            ),
            [{**{c: p.get(c) for c in cols}, "run_id": rid, "rank": cp.rank} for p in cp.phases],
        )
    for path, g_per_j in cp.phase_fill.items():  # idempotent: only rows without CO2e
        conn.execute(
            "UPDATE phases SET co2e_g = energy_j * :g WHERE run_id = :id AND rank = :rank "
            "AND path = :path AND co2e_g IS NULL",
            {"g": g_per_j, "id": rid, "rank": cp.rank, "path": path},
        )
    if cp.owner and cp.run:
        fields = [k for k in _RUN_UPDATE if k in cp.run]
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        conn.execute(
            f"UPDATE runs SET {sets}{', ' if sets else ''}checkpoint_seq = :seq "
            "WHERE id = :id AND checkpoint_seq < :seq",
            {**{k: cp.run[k] for k in fields}, "seq": cp.seq, "id": rid},
        )
    elif cp.run.get("heartbeat_at"):
        conn.execute(
            "UPDATE runs SET heartbeat_at = :hb WHERE id = :id AND "
            "(heartbeat_at IS NULL OR heartbeat_at < :hb)",
            {"hb": cp.run["heartbeat_at"], "id": rid},
        )
    if cp.components:
        _update_totals(conn, rid)


def _update_totals(conn: Connection, rid: str) -> None:
    """The run's totals from every rank's component rows (a few rows; idempotent).

    ``energy_j``: the components' sum; ``node_energy_j``: the nodes' own figures (their BMCs),
    beside it, never in it. Once a rank's devices carry their CO2e (its final checkpoint),
    ``co2e_g`` and ``co2e_g_annual`` are the sum over those ranks, each of its node's figure
    where it accounted the node (the node row has a CO2e) else of its components', and
    ``co2e_basis`` says which and ``co2e_energy_j`` how much (J, before PUE)."""
    from greentrack.meters.nodepower import is_node

    rows = conn.query(
        "SELECT rank, component, energy_j, co2e_g, co2e_g_annual FROM components "
        "WHERE run_id = :id",
        {"id": rid},
    )
    energy_j = sum(r["energy_j"] or 0.0 for r in rows if not is_node(r["component"]))
    node = [r for r in rows if is_node(r["component"])]
    fields: dict[str, Any] = {
        "energy_j": energy_j,
        "node_energy_j": sum(r["energy_j"] or 0.0 for r in node) if node else None,
    }
    node_ranks = {r["rank"] for r in node if r["co2e_g"] is not None}
    counted = [
        r
        for r in rows
        if r["co2e_g"] is not None and is_node(r["component"]) == (r["rank"] in node_ranks)
    ]
    if counted:
        fields["co2e_g"] = sum(r["co2e_g"] for r in counted)
        annual = [r["co2e_g_annual"] for r in counted]
        fields["co2e_g_annual"] = None if None in annual else sum(annual)
        ranks = {r["rank"] for r in counted}
        fields["co2e_basis"] = (
            "node" if ranks <= node_ranks else "node+components" if node_ranks else "components"
        )
        fields["co2e_energy_j"] = sum(
            r["energy_j"] or 0.0
            for r in rows
            if r["rank"] in ranks and is_node(r["component"]) == (r["rank"] in node_ranks)
        )
    sets = ", ".join(f"{k} = :{k}" for k in fields)
    conn.execute(f"UPDATE runs SET {sets} WHERE id = :id", {**fields, "id": rid})
