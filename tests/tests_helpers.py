"""Small builders shared by tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from greentrack.store.checkpoint import Checkpoint


def checkpoint(
    run_id: str,
    seq: int = 1,
    energy_j: float = 1.0,
    status: str = "finished",
    *,
    sample: bool = False,
    **extra: Any,
) -> Checkpoint:
    """A one-device (gpu:0, counter) checkpoint of run ``run_id`` at ``energy_j`` joules.

    ``sample=True`` adds one sample at ``t = 1.7e9 + seq``; ``extra`` sets other Checkpoint
    fields (metrics, tags, ...).
    """
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    run = {
        "project": "p",
        "name": "n",
        "status": status,
        "started_at": t0,
        "heartbeat_at": t0,
        "duration_s": float(seq),
        "pue": 1.0,
        "meta": {"a": 1},
    }
    samples = (
        [
            {
                "device": "gpu:0",
                "component": "gpu",
                "t_s": 1.7e9 + seq,
                "energy_j": energy_j,
                "power_w": 100.0,
            }
        ]
        if sample
        else []
    )
    return Checkpoint(
        run_id=run_id,
        rank=0,
        seq=seq,
        run=run,
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
        samples=samples,
        **extra,
    )


def stored_run(url: str, run_id: str) -> dict[str, Any]:
    """The run object ``greentrack show --format json`` prints, read through the library."""
    from greentrack.store import queries

    conn = queries.open_store(url)
    try:
        return queries.get_run(conn, run_id)
    finally:
        conn.close()


def show_run(url: str, run_id: str) -> tuple[dict[str, Any], str]:
    """``greentrack show RUN`` as a user runs it: ``(the JSON object, the human table)``."""
    import json

    from click.testing import CliRunner

    from greentrack.cli import main

    runner = CliRunner()
    as_json = runner.invoke(main, ["show", run_id, "--db", url, "--format", "json"])
    table = runner.invoke(main, ["show", run_id, "--db", url])
    assert as_json.exit_code == 0 and table.exit_code == 0, as_json.output + table.output
    return json.loads(as_json.output), table.output
