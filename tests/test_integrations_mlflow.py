"""MLflow: a real ``mlflow server`` started on 127.0.0.1 (SQLite backend, local artifact root),
runs tracked under an active MLflow run or with ``track(mlflow=True)`` / config, read back with
``MlflowClient``. Energy comes from a replayed trace, so every figure has a known ground truth.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import greentrack as gt
from greentrack.meters import ReplayMeter

if os.environ.get("GREENTRACK_TEST_INTEGRATIONS") != "require":  # CI: a missing package fails
    pytest.importorskip("mlflow", reason="pip install -e '.[mlflow]'")
import mlflow
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # the server takes seconds to start (once for the module)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--default-artifact-root", (root / "artifacts").as_uri(), "--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()}")
            time.sleep(0.2)
        yield uri
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def tracking(server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    mlflow.set_tracking_uri(server)
    yield MlflowClient(server)
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def store(sqlite_url: str) -> str:
    """A store created beforehand (creating one takes the first checkpoint a second or more)."""
    from greentrack.store.schema import upgrade

    upgrade(sqlite_url)
    return sqlite_url


def trace() -> ReplayMeter:
    return ReplayMeter([(0.0, {"gpu:0": 300.0, "cpu:package-0": 60.0})], method="counter")


def history(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key),
                                    key=lambda m: (m.timestamp, m.step))]  # fmt: skip


def test_an_active_mlflow_run_gets_the_figures_over_time_and_the_price_tag(
    tracking: MlflowClient, store: str, tmp_path: Path
) -> None:
    mlflow.set_experiment("greentrack-active")
    with (
        mlflow.start_run() as active,
        gt.track("ml", project="mlp", region="ES", db=store, meters=[trace()],
                 interval_s=0.05, checkpoint_s=0.2) as run,
    ):  # fmt: skip
        time.sleep(1.5)
    s = run.summary()
    assert not [w for w in s.warnings if "mlflow" in w], s.warnings
    got = tracking.get_run(active.info.run_id)
    assert got.data.params == {
        "greentrack/run_id": s.id,
        "greentrack/region": "ES",
        "greentrack/intensity_source": "codecarbon-static",
        "greentrack/methods": "cpu:package-0=counter, gpu:0=counter",
    }
    energy = history(tracking, active.info.run_id, "greentrack/energy_kwh")
    assert len(energy) >= 3  # at the checkpoint cadence, not only at the end
    assert energy == sorted(energy) and energy[-1] == pytest.approx(s.energy_j / 3.6e6, 1e-12)
    gpu = {c.device: c for c in s.components}["gpu:0"]
    gpu_kwh = history(tracking, active.info.run_id, "greentrack/energy_kwh/gpu:0")
    assert gpu_kwh[-1] == pytest.approx(gpu.energy_j / 3.6e6, 1e-12)
    power = history(tracking, active.info.run_id, "greentrack/power_w/gpu:0")
    # exact up to the float rounding of epoch timestamps (~0.2 µs in ~0.2 s intervals)
    assert power and all(p == pytest.approx(300.0, rel=1e-4) for p in power), power
    assert history(tracking, active.info.run_id, "greentrack/power_w/cpu:package-0")[-1] == (
        pytest.approx(60.0, rel=1e-4)
    )
    assert history(tracking, active.info.run_id, "greentrack/co2e_g")[-1] == pytest.approx(
        s.co2e_g, rel=1e-12
    )
    names = {a.path for a in tracking.list_artifacts(active.info.run_id, "greentrack")}
    assert names == {"greentrack/pricetag.md", "greentrack/pricetag.json"}
    local = Path(tracking.download_artifacts(active.info.run_id, "greentrack", str(tmp_path)))
    tag = json.loads((local / "pricetag.json").read_text())
    (stored,) = tag["runs"]
    assert stored["id"] == s.id and stored["energy_j"] == pytest.approx(s.energy_j, 1e-12)
    assert s.id[:8] in (local / "pricetag.md").read_text()
    # greentrack logged into the user's run and made no other
    runs = tracking.search_runs([active.info.experiment_id])
    assert [r.info.run_id for r in runs] == [active.info.run_id]


def test_track_mlflow_true_or_config_creates_and_ends_a_run(
    tracking: MlflowClient, sqlite_url: str, gt_home: Path
) -> None:
    mlflow.set_experiment("greentrack-created")
    with gt.track("by-flag", db=sqlite_url, meters=[trace()], checkpoint_s=0.1,
                  mlflow=True) as run:  # fmt: skip
        time.sleep(0.3)
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text("[integrations]\nmlflow = true\n")
    with gt.track("by-config", db=sqlite_url, meters=[trace()], checkpoint_s=0.1) as run2:
        time.sleep(0.3)
    with gt.track("turned-off", db=sqlite_url, meters=[trace()], mlflow=False):
        pass
    exp = tracking.get_experiment_by_name("greentrack-created")
    found = {r.info.run_name: r for r in tracking.search_runs([exp.experiment_id])}
    assert set(found) == {"by-flag", "by-config"}
    for name, r in (("by-flag", run), ("by-config", run2)):
        assert found[name].info.status == "FINISHED"
        assert found[name].data.tags["greentrack.run_id"] == r.id
        energy = history(tracking, found[name].info.run_id, "greentrack/energy_kwh")
        assert energy[-1] == pytest.approx(r.summary().energy_j / 3.6e6, 1e-12), (name, energy)
        latest = found[name].data.metrics["greentrack/energy_kwh"]  # what MLflow shows
        assert latest == energy[-1], (name, latest, energy)


def test_a_tracking_server_that_is_down_is_a_warning_and_stop_keeps_its_deadline(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nobody there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    mlflow.set_tracking_uri(down)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with gt.track("down", db=sqlite_url, meters=[trace()], checkpoint_s=0.1, mlflow=True,
                  flush_timeout_s=3) as run:  # fmt: skip
        time.sleep(0.3)
        t_stop = time.monotonic()
    elapsed = time.monotonic() - t_stop
    s = run.summary()
    assert s.status == "finished" and s.energy_j > 0
    assert any(w.startswith("mlflow: ") for w in s.warnings), s.warnings
    assert elapsed < 3 + 1.0  # within flush_timeout_s (the final write and the listeners)


def test_a_server_that_hangs_never_blocks_stop_past_its_deadline(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts connections and never answers: stop() returns at flush_timeout_s."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        hung_uri = f"http://127.0.0.1:{hung.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", hung_uri)
        mlflow.set_tracking_uri(hung_uri)
        with gt.track("hung", db=sqlite_url, meters=[trace()], checkpoint_s=0.1, mlflow=True,
                      flush_timeout_s=2) as run:  # fmt: skip
            time.sleep(0.3)
            t_stop = time.monotonic()
        elapsed = time.monotonic() - t_stop
    assert run.summary().status == "finished"
    assert elapsed < 2 + 1.0, elapsed


def test_the_example_logs_into_a_local_mlflow_store(gt_home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["GREENTRACK_HOME"] = str(gt_home)
    repo = Path(__file__).resolve().parents[1]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = subprocess.run(
        [sys.executable, str(repo / "examples" / "mlflow_tracking.py"), "--seconds", "0.6"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "metric greentrack/energy_kwh = " in done.stdout
    assert "param  greentrack/run_id = " in done.stdout
    assert "artifact greentrack/pricetag.md" in done.stdout
    assert list(cwd.iterdir()) == []  # nothing written where it was started (no ./mlruns)
