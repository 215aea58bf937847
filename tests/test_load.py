"""Load, short version of ``benchmarks/bench_load.py``: 8 processes track runs into one store for
5 s at once (real tracker, replayed meters, fast sampling and checkpoints). Every sample each
process kept is in the store exactly once, every run finished with its own energy, and no
process saw ``database is locked`` (or spooled anything)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_load.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_concurrent_processes_lose_no_sample(store_url: str, tmp_path: Path) -> None:
    result = _bench().run_load(
        store_url, processes=8, seconds=5.0, devices=8, interval_s=0.02, checkpoint_s=0.2,
        run_s=2.0, workdir=tmp_path,
    )  # fmt: skip
    assert result.worker_failures == []
    assert result.problems == []  # no "database is locked", nothing spooled
    assert result.runs >= 8 and result.checkpoints > 8 * 10
    # a real load (~8 x 400 samples/s offered; a loaded machine keeps fewer, none may be lost)
    assert result.samples_kept > 8 * 250
    assert result.samples_stored == result.samples_kept and result.lost_samples == 0
    assert result.runs_not_finished == 0 and result.energy_mismatches == 0
    assert result.ok
