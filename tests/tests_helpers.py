"""Small builders shared by tests."""

from __future__ import annotations

from datetime import datetime

from greentrack.store.writer import Checkpoint


def checkpoint(run_id: str, seq: int = 1, energy_j: float = 1.0, **run: object) -> Checkpoint:
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    return Checkpoint(
        run_id=run_id,
        rank=0,
        seq=seq,
        run={
            "project": "p",
            "name": "n",
            "status": "finished",
            "started_at": t0,
            "heartbeat_at": t0,
            "duration_s": 1.0,
            "pue": 1.0,
            **run,
        },
        components=[
            {
                "component": "gpu",
                "device": "gpu:0",
                "energy_j": energy_j,
                "method": "counter",
                "model": None,
                "host": "h",
            }
        ],
    )
