"""TensorBoard: ``track(tensorboard=<log dir | SummaryWriter>)`` writes scalars that TensorBoard's
own event reader reads back, with the run's figures (a replayed trace: known ground truth)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import greentrack as gt
from greentrack.errors import ConfigError
from greentrack.meters import ReplayMeter

if os.environ.get("GREENTRACK_TEST_INTEGRATIONS") != "require":  # CI: a missing package fails
    pytest.importorskip("tensorboard", reason="pip install -e '.[tensorboard]'")


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture
def store(sqlite_url: str) -> str:
    """A store created beforehand (creating one holds the first checkpoint up for a second)."""
    from greentrack.store.schema import upgrade

    upgrade(sqlite_url)
    return sqlite_url


def trace() -> ReplayMeter:
    return ReplayMeter([(0.0, {"gpu:0": 300.0, "cpu:package-0": 60.0})], method="counter")


def check(got: dict[str, list[tuple[int, float]]], run: gt.Run) -> None:
    s = run.summary()
    energy = got["greentrack/energy_kwh"]
    assert len(energy) >= 2  # checkpoints as the run goes, and the final figures
    assert [v for _, v in energy] == sorted(v for _, v in energy)
    assert energy[-1][1] == pytest.approx(s.energy_j / 3.6e6, rel=1e-6)  # float32 in events
    assert energy[-1][0] == int(s.duration_s * 1000)  # step: ms since the start
    gpu = {c.device: c.energy_j for c in s.components}["gpu:0"]
    assert got["greentrack/energy_kwh/gpu:0"][-1][1] == pytest.approx(gpu / 3.6e6, rel=1e-6)
    assert all(v == pytest.approx(300.0, rel=1e-4) for _, v in got["greentrack/power_w/gpu:0"])
    assert got["greentrack/co2e_g"][-1][1] == pytest.approx(s.co2e_g, rel=1e-6)


def test_a_log_dir_gets_the_scalars(store: str, tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    with gt.track("tb", db=store, region="ES", meters=[trace()], interval_s=0.05,
                  checkpoint_s=0.1, tensorboard=str(logdir)) as run:  # fmt: skip
        time.sleep(0.6)
    check(scalars(logdir), run)


def test_a_summary_writer_gets_the_scalars_and_stays_open(store: str, tmp_path: Path) -> None:
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    writer = torch_tb.SummaryWriter(str(tmp_path / "sw"))
    with gt.track("sw", db=store, region="ES", meters=[trace()], interval_s=0.05,
                  checkpoint_s=0.1, tensorboard=writer) as run:  # fmt: skip
        time.sleep(0.6)
    writer.add_scalar("user/loss", 0.5, 1)  # still the user's, still open
    writer.close()
    got = scalars(tmp_path / "sw")
    check(got, run)
    assert got["user/loss"] == [(1, 0.5)]


def test_a_writer_that_fails_is_a_warning(sqlite_url: str) -> None:
    class Broken:
        def add_scalar(self, *args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device")

    with gt.track("broken", db=sqlite_url, meters=[trace()], checkpoint_s=0.1,
                  tensorboard=Broken()) as run:  # fmt: skip
        time.sleep(0.3)
    s = run.summary()
    assert s.status == "finished" and s.energy_j > 0
    assert any(w.startswith("tensorboard: OSError:") for w in s.warnings), s.warnings


def test_not_a_writer_fails_before_the_users_code(sqlite_url: str) -> None:
    ran = False
    with (
        pytest.raises(ConfigError, match="give a SummaryWriter"),
        gt.track("bad", db=sqlite_url, meters=[trace()], tensorboard=42),
    ):
        ran = True
    assert not ran


def test_the_example_reads_its_scalars_back(gt_home: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(repo / "examples" / "tensorboard_scalars.py"),
         "--logdir", str(tmp_path / "tb"), "--seconds", "0.3"],
        env=dict(os.environ, GREENTRACK_HOME=str(gt_home)),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "greentrack/energy_kwh = " in done.stdout
    assert "greentrack/power_w/" in done.stdout
