"""Weights & Biases, offline (``WANDB_MODE=offline``, no network): a run tracked under an active
``wandb.run`` puts its figures into that run's history (joined to the user's own steps), its files
(every checkpoint) and its summary, read back from the offline run's own ``.wandb`` file (a W&B
record log: 32 KiB blocks of CRC-framed protobuf records) and ``files/`` folder."""

from __future__ import annotations

import json
import os
import struct
import threading
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
        if pos + 7 + length > len(data):  # wandb-core is still writing this one: not yet
            break
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
    from google.protobuf.message import DecodeError

    parsed = []
    for i, b in enumerate(out):
        try:
            parsed.append(Record.FromString(b))
        except DecodeError:
            if i < len(out) - 1:  # only the last record (being written) may be partial
                raise
    return parsed


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


class Recorder:
    """What a user's own listener sees: every checkpoint's cumulative energy per device (J)."""

    def __init__(self) -> None:
        self.energy_j: list[dict[str, float]] = []

    def on_checkpoint(self, run: gt.Run, checkpoint: Any) -> None:
        if checkpoint.run.get("ended_at") is None:  # the final one is the summary's
            self.energy_j.append({c["device"]: c["energy_j"] for c in checkpoint.components})


def finished_records(folder: Path) -> tuple[Path, list[Any]]:
    """The offline run's folder and records, once wandb-core (its own process) wrote the exit."""
    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + 60
    while True:
        recs = records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in recs) or time.monotonic() > deadline:
            return path.parent, recs
        time.sleep(0.1)


@pytest.mark.parametrize("explicit_steps", [True, False], ids=["step=", "no-step"])
def test_every_checkpoint_reaches_the_run_files_and_the_users_steps_stay_theirs(
    offline: Path, sqlite_url: str, explicit_steps: bool
) -> None:
    import wandb

    from greentrack.store.schema import upgrade

    upgrade(sqlite_url)  # a store made beforehand: the first checkpoints come on time
    wrun = wandb.init(project="gt", dir=str(offline), mode="offline")
    rec = Recorder()
    run = gt.Run("wb", db=sqlite_url, region="ES", meters=[trace()], interval_s=0.02,
                 checkpoint_s=0.05)  # fmt: skip
    run.add_listener(rec)  # before the start: it sees the first checkpoint too
    losses = [1.0 / (step + 1) for step in range(6)]
    try:
        with run:
            for step, loss in enumerate(losses):  # the user's own steps, several checkpoints each
                time.sleep(0.25)
                wrun.log({"loss": loss}, **({"step": step} if explicit_steps else {}))
    finally:
        wrun.finish()
    s = run.summary()
    assert not [w for w in s.warnings if w.startswith("wandb")], s.warnings
    folder, recs = finished_records(offline)
    history = [items(r.history.item) for r in recs if r.WhichOneof("record_type") == "history"]

    # the user's steps, undisturbed: the user's rows first, numbered as the user's, every loss kept
    users = history[: len(losses)]
    assert [(h["_step"], h["loss"]) for h in users] == list(enumerate(losses))
    # at most one row more: without step= the final figures wait for a next row, which
    # wandb.finish() commits (a step after the user's last; nothing of the user's moves)
    assert len(history) - len(users) <= (0 if explicit_steps else 1)
    assert all(k.startswith(("greentrack/", "_")) for h in history[len(users) :] for k in h)
    # the history keeps the latest checkpoint per user step: cumulative, so exact where it is
    assert len(rec.energy_j) >= 2 * len(losses), len(rec.energy_j)  # several per step
    cumulative_kwh = [sum(e.values()) / 3.6e6 for e in rec.energy_j] + [s.energy_j / 3.6e6]
    in_history = [h["greentrack/energy_kwh"] for h in history if "greentrack/energy_kwh" in h]
    assert in_history == sorted(in_history)
    assert all(any(v == pytest.approx(c, rel=1e-12) for c in cumulative_kwh) for v in in_history)
    assert in_history[-1] == pytest.approx(s.energy_j / 3.6e6, rel=1e-12)  # the final figures
    assert all(h["greentrack/power_w/gpu:0"] == pytest.approx(300.0, rel=1e-4)
               for h in history if "greentrack/power_w/gpu:0" in h)  # fmt: skip

    # every checkpoint, in order, then the final figures: in the run's files, saved for upload
    lines = (folder / "files" / "greentrack" / "checkpoints.jsonl").read_text().splitlines()
    series = [json.loads(line) for line in lines]
    assert len(series) == len(rec.energy_j) + 1
    gpu = {c.device: c.energy_j for c in s.components}["gpu:0"]
    for row, energy in zip(series, [*rec.energy_j, {"gpu:0": gpu}], strict=True):
        assert row["greentrack/run_id"] == run.id
        assert row["greentrack/energy_kwh/gpu:0"] == pytest.approx(
            energy["gpu:0"] / 3.6e6, rel=1e-12
        )
    assert [row["greentrack/energy_kwh"] for row in series] == pytest.approx(
        cumulative_kwh, rel=1e-12
    )
    t_s = [row["greentrack/t_s"] for row in series]
    assert t_s == sorted(t_s)
    files = [f for r in recs if r.WhichOneof("record_type") == "files" for f in r.files.files]
    (saved,) = [f for f in files if f.path == "greentrack/checkpoints.jsonl"]
    assert saved.policy == saved.END  # uploaded once, whole, when the W&B run ends

    summary: dict[str, Any] = {}
    for r in recs:
        if r.WhichOneof("record_type") == "summary":
            summary.update(items(r.summary.update))
    assert summary["greentrack/energy_kwh"] == pytest.approx(s.energy_j / 3.6e6, rel=1e-12)
    assert summary["greentrack/co2e_g"] == pytest.approx(s.co2e_g, rel=1e-12)
    assert summary["greentrack/energy_kwh/gpu:0"] == pytest.approx(gpu / 3.6e6, rel=1e-12)


class SlowRun:
    """A W&B run whose ``log`` hangs until released (a stalled wandb): the duck type
    ``track(wandb=...)`` takes."""

    def __init__(self, folder: Path) -> None:
        self.dir = str(folder)
        self.summary: dict[str, float] = {}
        self.logged: list[dict[str, float]] = []
        self.release = threading.Event()

    def define_metric(self, name: str, step_metric: str | None = None) -> None:
        pass

    def log(self, row: dict[str, float], commit: bool = True) -> None:
        self.release.wait(30)
        self.logged.append(row)


def test_a_stalled_wandb_loses_no_checkpoint_from_the_run_file(
    tmp_path: Path, sqlite_url: str
) -> None:
    slow, rec = SlowRun(tmp_path), Recorder()
    run = gt.Run(
        "wb",
        db=sqlite_url,
        meters=[trace()],
        interval_s=0.01,
        checkpoint_s=0.05,
        integrations={"wandb": slow},
    )  # integrations=: what track(wandb=slow) passes
    run.add_listener(rec)
    with run:
        deadline = time.monotonic() + 20
        while len(rec.energy_j) < 40 and time.monotonic() < deadline:  # > 32 tasks queued
            time.sleep(0.01)
        slow.release.set()
    s = run.summary()
    assert any("updates dropped" in w for w in s.warnings), s.warnings  # the queue did overflow
    series = [
        json.loads(x)
        for x in (tmp_path / "greentrack" / "checkpoints.jsonl").read_text().splitlines()
    ]
    cumulative_kwh = [sum(e.values()) / 3.6e6 for e in rec.energy_j] + [s.energy_j / 3.6e6]
    assert [row["greentrack/energy_kwh"] for row in series] == pytest.approx(
        cumulative_kwh, rel=1e-12
    )
    assert slow.summary["greentrack/energy_kwh"] == pytest.approx(s.energy_j / 3.6e6, rel=1e-12)


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
