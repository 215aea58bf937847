"""Rows as older greentrack versions wrote them (their SQL, not today's writer), for migrations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from greentrack.store.dbapi import Connection


def write_0001_run(
    conn: Connection,
    run_id: str,
    energy_j: float,
    metrics: Sequence[tuple[str, int | None, float, float]] = (),
    *,
    replays: int = 1,
) -> None:
    """One finished run with one gpu:0 component of ``energy_j`` J, and ``metrics`` rows
    (key, step, value, t_s) inserted ``replays`` times with 0.1.0's statement (``ON CONFLICT
    (run_id, key, step, t_s) DO NOTHING``: rows with a NULL step are doubled by a replay)."""
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    with conn.transaction():
        conn.execute(
            "INSERT INTO runs (id, project, name, status, started_at, heartbeat_at, energy_j, "
            "pue, world_size, checkpoint_s, checkpoint_seq) VALUES (:id, 'p', 'n', 'finished', "
            ":t0, :t0, :e, 1.0, 1, 10.0, 1)",
            {"id": run_id, "t0": t0, "e": energy_j},
        )
        conn.execute(
            "INSERT INTO components (run_id, rank, host, component, device, energy_j, method, "
            "model, seq) VALUES (:id, 0, 'h', 'gpu', 'gpu:0', :e, 'counter', 'A100', 1)",
            {"id": run_id, "e": energy_j},
        )
        for _ in range(replays):
            for key, step, value, t_s in metrics:
                conn.execute(
                    "INSERT INTO metrics (run_id, key, step, value, t_s) VALUES (:id, :k, :s, "
                    ":v, :t) ON CONFLICT (run_id, key, step, t_s) DO NOTHING",
                    {"id": run_id, "k": key, "s": step, "v": value, "t": t_s},
                )
