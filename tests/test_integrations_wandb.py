"""Weights & Biases, offline (``WANDB_MODE=offline``, no network): a run tracked under an active
``wandb.run`` puts its figures into that run's history and summary, read back from the offline
run's own ``.wandb`` file (a W&B record log: 32 KiB blocks of CRC-framed protobuf records)."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest

import greentrack as gt
from greentrack.errors import ConfigError
from greentrack.meters import ReplayMeter

if os.environ.get("GREENTRACK_TEST_INTEGRATIONS") != "require":  # CI: a missing package fails
    pytest.importorskip("wandb", reason="pip install -e '.[wandb]'")


def records(path: Path) -> list[Any]:
    """Every record of a ``.wandb`` file (LevelDB-log framing after a 7-byte ``:W&B`` header)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    block, pos, out, buf = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # FULL
            out.append(chunk)
        elif kind == 2:  # FIRST
            buf = chunk
        elif kind == 3:  # MIDDLE
            buf += chunk
        elif kind == 4:  # LAST
            out.append(buf + chunk)
    return [Record.FromString(b) for b in out]


def items(entries: Any) -> dict[str, Any]:
    return {(e.key or "/".join(e.nested_key)): json.loads(e.value_json) for e in entries}


def trace() -> ReplayMeter:
    return ReplayMeter([(0.0, {"gpu:0": 300.0, "cpu:package-0": 60.0})], method="counter")


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    return tmp_path


def test_an_active_wandb_run_gets_history_and_summary(offline: Path, sqlite_url: str) -> None:
    import wandb

    from greentrack.store.schema import upgrade

    upgrade(sqlite_url)  # a store made beforehand: the first checkpoints come on time
    wrun = wandb.init(project="gt", dir=str(offline), mode="offline")
    try:
        with gt.track("wb", db=sqlite_url, region="ES", meters=[trace()], interval_s=0.05,
                      checkpoint_s=0.1) as run:  # fmt: skip
            for step in range(12):  # the user's own steps, explicit
                time.sleep(0.1)
                wrun.log({"loss": 1.0 / (step + 1)}, step=step)
    finally:
        wrun.finish()
    s = run.summary()
    assert not [w for w in s.warnings if w.startswith("wandb")], s.warnings
    (path,) = offline.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + 60
    while True:  # wandb-core writes the file from its own process: wait for the run's exit record
        recs = records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in recs) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    history = [items(r.history.item) for r in recs if r.WhichOneof("record_type") == "history"]
    ours = [h for h in history if "greentrack/energy_kwh" in h]
    kinds = [r.WhichOneof("record_type") for r in recs]
    assert len(ours) >= 3, (path.stat().st_size, kinds, history)  # at the checkpoint cadence
    assert all("loss" in h for h in ours[:-1])  # inside the user's rows, not rows of their own
    assert [h["loss"] for h in history if "loss" in h] == [1.0 / (i + 1) for i in range(12)]
    energy = [h["greentrack/energy_kwh"] for h in ours]
    assert energy == sorted(energy)
    assert all(h["greentrack/power_w/gpu:0"] == pytest.approx(300.0, rel=1e-4)
               for h in ours if "greentrack/power_w/gpu:0" in h)  # fmt: skip
    summary: dict[str, Any] = {}
    for r in recs:
        if r.WhichOneof("record_type") == "summary":
            summary.update(items(r.summary.update))
    assert summary["greentrack/energy_kwh"] == pytest.approx(s.energy_j / 3.6e6, rel=1e-12)
    assert summary["greentrack/co2e_g"] == pytest.approx(s.co2e_g, rel=1e-12)
    gpu = {c.device: c.energy_j for c in s.components}["gpu:0"]
    assert summary["greentrack/energy_kwh/gpu:0"] == pytest.approx(gpu / 3.6e6, rel=1e-12)


def test_wandb_true_without_a_run_fails_before_the_users_code(sqlite_url: str) -> None:
    import wandb  # noqa: F401  (imported, but no run)

    ran = False
    with (
        pytest.raises(ConfigError, match=r"wandb=True needs an active W&B run"),
        gt.track("x", db=sqlite_url, meters=[trace()], wandb=True),
    ):
        ran = True
    assert not ran


def test_the_example_runs_offline(gt_home: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    done = subprocess.run(
        [sys.executable, str(repo / "examples" / "wandb_offline.py"), "--dir", str(tmp_path / "w"),
         "--steps", "3"],
        env={**env, "GREENTRACK_HOME": str(gt_home)},
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "(offline)" in done.stdout and "greentrack/energy_kwh = " in done.stdout
    assert list((tmp_path / "w").glob("wandb/offline-run-*/run-*.wandb"))
