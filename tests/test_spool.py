"""Nothing lost: an unreachable store spools readings; `sync` and the next start write them."""

from __future__ import annotations

import time

from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.config import load_config
from greentrack.meters import ReplayMeter
from greentrack.store import queries
from greentrack.store.spool import Spool

DEAD_PG = "postgresql+psycopg://postgres@127.0.0.1:1/test"  # nothing listens on port 1


def test_unreachable_store_spools_and_sync_writes_everything(tmp_path) -> None:
    """The store is away for the whole run, comes back, and `greentrack sync` writes it all."""
    blocker = tmp_path / "mnt"
    blocker.write_text("the database volume is not mounted")  # a file where the folder should be
    url = f"sqlite:///{blocker}/runs.db"
    meter = ReplayMeter([(0.0, {"gpu:0": 100.0})])
    with gt.track("offline", db=url, meters=[meter], interval_s=0.02, checkpoint_s=0.05) as run:
        with run.phase("train"):
            time.sleep(0.3)
        run.log(step=1, acc=0.8)
    summary = run.summary()
    assert summary.status == "finished"
    assert any("spooled" in w and "greentrack sync" in w for w in summary.warnings)
    spool = Spool.for_store(load_config().spool_dir, url)
    assert spool.pending(run.id)

    blocker.unlink()  # the volume is back
    blocker.mkdir()
    result = CliRunner().invoke(main, ["sync", "--db", url])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "wrote 0" not in result.output
    assert spool.pending() == []
    conn = queries.open_store(url)
    obj = queries.get_run(conn, run.id)
    samples = queries.run_samples(conn, run.id)
    conn.close()
    assert obj["status"] == "finished"
    assert obj["energy_j"] == summary.energy_j
    assert obj["metrics"] == {"acc": 0.8}
    assert [p["name"] for p in obj["phases"]] == ["train"]
    assert samples["energy_j"].max() == summary.energy_j
    assert samples["t_s"].size >= 5


def test_dead_postgres_spools_without_breaking_training() -> None:
    meter = ReplayMeter([(0.0, {"gpu:0": 100.0})])
    t = time.perf_counter()
    with gt.track("offline", db=DEAD_PG, meters=[meter], checkpoint_s=0.05) as run:
        time.sleep(0.2)
    assert time.perf_counter() - t < 10
    assert run.summary().status == "finished"
    assert Spool.for_store(load_config().spool_dir, DEAD_PG).pending(run.id)


def test_next_start_writes_earlier_spooled_runs(sqlite_url: str) -> None:
    meter = ReplayMeter([(0.0, {"gpu:0": 50.0})])
    spool = Spool.for_store(load_config().spool_dir, sqlite_url)
    # A run whose store was unreachable: its checkpoints sit in the spool of this store.
    from tests_helpers import checkpoint

    spool.append(checkpoint("ab" * 16, energy_j=123.0))
    with gt.track("later", db=sqlite_url, meters=[meter], checkpoint_s=0.05, interval_s=0.02):
        time.sleep(0.2)
    assert spool.pending() == []
    conn = queries.open_store(sqlite_url)
    assert queries.get_run(conn, "abab")["energy_j"] == 123.0
    conn.close()
